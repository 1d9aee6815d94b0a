package status

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Component is one of Pier's workloads (the controller Deployment, the
// speaker and relay DaemonSets) and what keeps its Pods from being Ready.
type Component struct {
	Name     string    `json:"name"` // app.kubernetes.io/component
	Kind     string    `json:"kind"`
	Object   string    `json:"object"`
	Desired  int32     `json:"desired"`
	Ready    int32     `json:"ready"`
	UpToDate int32     `json:"upToDate"`
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one Pod of a component that is not Ready, and why.
type Problem struct {
	Pod  string `json:"pod"`
	Node string `json:"node,omitempty"`
	Why  string `json:"why"`
}

// components builds one Component per Deployment and DaemonSet, sorted by
// name, with the Problems of the Pods carrying its component label.
func components(o Objects) []Component {
	out := []Component{}
	for _, d := range o.Deployments {
		out = append(out, Component{Name: d.Labels[LabelComponent], Kind: "Deployment", Object: d.Name,
			Desired: ptrOr(d.Spec.Replicas, 1), Ready: d.Status.ReadyReplicas, UpToDate: d.Status.UpdatedReplicas})
	}
	for _, ds := range o.DaemonSets {
		out = append(out, Component{Name: ds.Labels[LabelComponent], Kind: "DaemonSet", Object: ds.Name,
			Desired: ds.Status.DesiredNumberScheduled, Ready: ds.Status.NumberReady, UpToDate: ds.Status.UpdatedNumberScheduled})
	}
	warnings := latestWarnings(o.Events)
	for i := range out {
		for _, p := range o.Pods {
			if p.Labels[LabelComponent] != out[i].Name {
				continue
			}
			if why := podProblem(&p, warnings[p.Name]); why != "" {
				out[i].Problems = append(out[i].Problems, Problem{Pod: p.Name, Node: p.Spec.NodeName, Why: why})
			}
		}
		slices.SortFunc(out[i].Problems, func(a, b Problem) int {
			return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Pod, b.Pod))
		})
	}
	slices.SortFunc(out, func(a, b Component) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Object, b.Object))
	})
	return out
}

// Labels the chart and the kustomize base put on Pier's workloads and
// Pods.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelComponent = "app.kubernetes.io/component"
	// Selector selects Pier's workloads and Pods.
	Selector = LabelName + "=pier"
)

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// latestWarnings is the newest Warning event message per Pod name.
func latestWarnings(evs []corev1.Event) map[string]string {
	newest := map[string]corev1.Event{}
	for _, ev := range evs {
		if ev.Type != corev1.EventTypeWarning || ev.InvolvedObject.Kind != "Pod" || onlyReason(ev.Message) || advisory[ev.Reason] {
			continue
		}
		if cur, ok := newest[ev.InvolvedObject.Name]; !ok || eventTime(ev).After(eventTime(cur)) {
			newest[ev.InvolvedObject.Name] = ev
		}
	}
	out := map[string]string{}
	for pod, ev := range newest {
		out[pod] = ev.Reason + ": " + ev.Message
	}
	return out
}

// advisory are kubelet warnings that do not keep a Pod from running.
var advisory = map[string]bool{"MissingClusterDNS": true, "DNSConfigForming": true}

// backingOff reports a container waiting to pull again, whose message
// does not say why the last pull failed.
func backingOff(cs corev1.ContainerStatus) bool {
	return cs.State.Waiting != nil && cs.State.Waiting.Reason == "ImagePullBackOff"
}

// onlyReason reports a message that repeats a container's waiting reason
// ("Error: ImagePullBackOff"): the kubelet sends one after every event
// that says why, and it would hide that one.
func onlyReason(msg string) bool {
	rest, ok := strings.CutPrefix(msg, "Error: ")
	return ok && !strings.ContainsAny(rest, " :")
}

// eventTime is when an event last happened, whichever way its reporter
// stamped it.
func eventTime(ev corev1.Event) time.Time {
	for _, t := range []time.Time{ev.LastTimestamp.Time, ev.EventTime.Time, ev.FirstTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return ev.CreationTimestamp.Time
}

// podProblem says why a Pod is not Ready, "" when it is (or is going
// away). warning is its newest Warning event, the only place a failing
// probe or a mount error shows.
func podProblem(p *corev1.Pod, warning string) string {
	if p.DeletionTimestamp != nil || podReady(p) {
		return ""
	}
	if c := podCondition(p, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse {
		return join("not scheduled: "+c.Reason, c.Message)
	}
	for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		if why := containerProblem(cs); why != "" {
			if backingOff(cs) && warning != "" {
				why += " (" + warning + ")" // the pull error behind the back-off
			}
			return why
		}
	}
	if warning != "" {
		return warning
	}
	if c := podCondition(p, corev1.ContainersReady); c != nil && c.Message != "" {
		return c.Message
	}
	return "not ready (" + string(p.Status.Phase) + ")"
}

// containerProblem is what a container's state says is wrong: waiting for
// a reason other than starting, or an init container that failed.
func containerProblem(cs corev1.ContainerStatus) string {
	if w := cs.State.Waiting; w != nil && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
		why := join(fmt.Sprintf("container %s: %s", cs.Name, w.Reason), w.Message)
		if t := cs.LastTerminationState.Terminated; t != nil {
			why += fmt.Sprintf("; last exit %d (%s)", t.ExitCode, join(t.Reason, lastLine(t.Message)))
		}
		return why
	}
	if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
		return fmt.Sprintf("container %s: exited %d (%s)", cs.Name, t.ExitCode, join(t.Reason, lastLine(t.Message)))
	}
	return ""
}

func podReady(p *corev1.Pod) bool {
	c := podCondition(p, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// join is "a: b", or a alone when b is empty.
func join(a, b string) string {
	if b == "" {
		return a
	}
	return a + ": " + b
}

// lastLine is the last non-empty line of a termination message (the
// error a daemon printed before it exited); a JSON log line (Pier's
// daemons log JSON) is shortened to its message and error.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	var entry struct{ Msg, Err string }
	if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg != "" {
		return join(entry.Msg, entry.Err)
	}
	return line
}
