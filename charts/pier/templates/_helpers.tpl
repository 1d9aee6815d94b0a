{{/* Image reference: registry/repository:tag, or @digest when set. */}}
{{- define "pier.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if eq $tag "latest" -}}{{- fail "image.tag: use a version, not latest" -}}{{- end -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{- define "pier.selectorLabels" -}}
app.kubernetes.io/name: pier
app.kubernetes.io/component: {{ . }}
{{- end -}}

{{/* Labels: pier.labels (list $ "component") */}}
{{- define "pier.labels" -}}
{{- $root := index . 0 -}}
{{ include "pier.selectorLabels" (index . 1) }}
app.kubernetes.io/part-of: pier
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version }}
{{- end -}}

{{- define "pier.pullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
- name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "pier.memberlistSecret" -}}
{{- default "pier-memberlist" .Values.speaker.memberlist.existingSecret -}}
{{- end -}}

{{/* The namespace of BGP password Secrets; the default also when an upgrade
with --reuse-values carries no value for it (releases before it existed). */}}
{{- define "pier.bgpPasswordNamespace" -}}
{{- .Values.speaker.bgpPasswordNamespace | default "pier-bgp-passwords" -}}
{{- end -}}

{{/* The namespace of the relays' Leases, and of the webhook's certificate
Secret: their defaults also when an upgrade with --reuse-values carries no
value for them (releases before they existed). */}}
{{- define "pier.relayLeaseNamespace" -}}
{{- .Values.relay.leaseNamespace | default "pier-relays" -}}
{{- end -}}

{{- define "pier.webhookSecretNamespace" -}}
{{- .Values.controller.webhook.secretNamespace | default "pier-webhook" -}}
{{- end -}}
