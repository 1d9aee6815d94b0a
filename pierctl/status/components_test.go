package status

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pierPod(name, component, node string, ready bool, st corev1.PodStatus) corev1.Pod {
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: cond})
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelName: "pier", LabelComponent: component}},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     st,
	}
}

func waiting(container, reason, msg string) corev1.PodStatus {
	return corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
		Name: container, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
	}}}
}

func TestPodProblem(t *testing.T) {
	crash := waiting("speaker", "CrashLoopBackOff", "back-off 40s restarting failed container=speaker")
	crash.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{
		ExitCode: 1, Reason: "Error", Message: "starting\nmemberlist key: open /etc/pier/memberlist/key: no such file or directory\n"}
	initFailed := corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{{
		Name: "state-dir", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "chown /var/lib/pier-relay: operation not permitted"}},
	}}}
	unscheduled := corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."}}}
	running := corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "controller", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
		Conditions: []corev1.PodCondition{{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Message: "containers with unready status: [controller]"}}}
	gone := pierPod("old", "speaker", "node1", false, crash)
	gone.DeletionTimestamp = &metav1.Time{Time: t0}
	for _, tc := range []struct {
		name    string
		pod     corev1.Pod
		warning string
		want    string
	}{
		{"ready", pierPod("p", "speaker", "node1", true, corev1.PodStatus{Phase: corev1.PodRunning}), "", ""},
		{"terminating", gone, "", ""},
		{"image missing", pierPod("p", "speaker", "node1", false, waiting("speaker", "ImagePullBackOff", `Back-off pulling image "registry.lab:5000/pier-lb/pier:no-such-tag"`)), "",
			`container speaker: ImagePullBackOff: Back-off pulling image "registry.lab:5000/pier-lb/pier:no-such-tag"`},
		{"crash loop shows the last error", pierPod("p", "speaker", "node1", false, crash), "",
			"container speaker: CrashLoopBackOff: back-off 40s restarting failed container=speaker; last exit 1 (Error: memberlist key: open /etc/pier/memberlist/key: no such file or directory)"},
		{"a JSON log line shortened", pierPod("p", "controller", "node2", false, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: "controller", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error",
				Message: `{"time":"2026-12-05T23:02:44Z","level":"ERROR","msg":"set up controller","err":"Pier's CRDs are not installed: relays.pier.dev not served"}`}}}}}), "",
			"container controller: exited 1 (Error: set up controller: Pier's CRDs are not installed: relays.pier.dev not served)"},
		{"init container failed", pierPod("p", "relay", "node2", false, initFailed), "",
			"container state-dir: exited 2 (Error: chown /var/lib/pier-relay: operation not permitted)"},
		{"not scheduled", pierPod("p", "controller", "", false, unscheduled), "",
			"not scheduled: Unschedulable: 0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."},
		{"probe failing shows the event", pierPod("p", "controller", "node1", false, running), "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503",
			"Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503"},
		{"back-off says the pull error", pierPod("p", "speaker", "node1", false, waiting("speaker", "ImagePullBackOff", `Back-off pulling image "192.0.2.1:5999/pier:v1"`)),
			`Failed: Failed to pull image "192.0.2.1:5999/pier:v1": dial tcp 192.0.2.1:5999: connect: connection refused`,
			`container speaker: ImagePullBackOff: Back-off pulling image "192.0.2.1:5999/pier:v1" (Failed: Failed to pull image "192.0.2.1:5999/pier:v1": dial tcp 192.0.2.1:5999: connect: connection refused)`},
		{"a pull error says it all", pierPod("p", "speaker", "node1", false, waiting("speaker", "ErrImagePull", `failed to pull "lab/pier:v2": not found`)), "Unhealthy: older probe failure",
			`container speaker: ErrImagePull: failed to pull "lab/pier:v2": not found`},
		{"not ready without an event", pierPod("p", "controller", "node1", false, running), "", "containers with unready status: [controller]"},
		{"starting", pierPod("p", "speaker", "node1", false, waiting("speaker", "ContainerCreating", "")), "", "not ready (Pending)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, podProblem(&tc.pod, tc.warning)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestComponentsText(t *testing.T) {
	two := int32(2)
	labels := func(c string) map[string]string { return map[string]string{LabelName: "pier", LabelComponent: c} }
	objs := Objects{
		Namespace: "pier-system",
		Deployments: []appsv1.Deployment{{ObjectMeta: metav1.ObjectMeta{Name: "pier-controller", Labels: labels("controller")},
			Spec: appsv1.DeploymentSpec{Replicas: &two}, Status: appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 2}}},
		DaemonSets: []appsv1.DaemonSet{
			{ObjectMeta: metav1.ObjectMeta{Name: "pier-speaker", Labels: labels("speaker")},
				Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, NumberReady: 2, UpdatedNumberScheduled: 1}},
			{ObjectMeta: metav1.ObjectMeta{Name: "pier-relay", Labels: labels("relay")},
				Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, NumberReady: 2, UpdatedNumberScheduled: 3}},
		},
		Pods: []corev1.Pod{
			pierPod("pier-speaker-a", "speaker", "node1", true, corev1.PodStatus{}),
			pierPod("pier-speaker-b", "speaker", "node3", false, waiting("speaker", "ImagePullBackOff", `Back-off pulling image "lab/pier:v2"`)),
			pierPod("pier-controller-x", "controller", "node2", true, corev1.PodStatus{}),
		},
		Events: []corev1.Event{
			{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "pier-speaker-b"}, Type: corev1.EventTypeWarning, Reason: "Failed", Message: `Failed to pull image "lab/pier:v2": not found`,
				LastTimestamp: metav1.Time{Time: t0.Add(-time.Second)}},
			{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "pier-speaker-b"}, Type: corev1.EventTypeWarning, Reason: "Failed", Message: "Error: ImagePullBackOff",
				LastTimestamp: metav1.Time{Time: t0}},
			{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "pier-speaker-b"}, Type: corev1.EventTypeWarning, Reason: "MissingClusterDNS", Message: "kubelet does not have ClusterDNS IP configured",
				LastTimestamp: metav1.Time{Time: t0}},
			{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "pier-speaker-b"}, Type: corev1.EventTypeNormal, Reason: "BackOff", Message: `Back-off pulling image "lab/pier:v2"`,
				LastTimestamp: metav1.Time{Time: t0}},
		},
	}
	var out bytes.Buffer
	if err := Build(objs).WriteText(&out, t0); err != nil {
		t.Fatal(err)
	}
	got, _, _ := strings.Cut(out.String(), "\nPOOLS\n")
	want := `COMPONENTS
NAME        OBJECT                      READY  UP-TO-DATE  PROBLEM
controller  deployment/pier-controller  2/2    2           -
relay       daemonset/pier-relay        2/3    3           1 of 3 not ready
speaker     daemonset/pier-speaker      2/3    1           1 Pod(s) not ready:
                                                           pier-speaker-b on node3: container speaker: ImagePullBackOff: Back-off pulling image "lab/pier:v2" (Failed: Failed to pull image "lab/pier:v2": not found)
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
