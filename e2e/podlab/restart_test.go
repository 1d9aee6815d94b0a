package podlab

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNotBack(t *testing.T) {
	since := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	pod := func(started time.Time, ready corev1.ConditionStatus) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "relay", State: corev1.ContainerState{
				Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}}}},
		}}
	}
	waiting := pod(since, corev1.ConditionFalse)
	waiting.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	noStatus := pod(since, corev1.ConditionTrue)
	noStatus.Status.ContainerStatuses = nil
	deleting := pod(since.Add(-time.Hour), corev1.ConditionTrue)
	deleting.DeletionTimestamp = &metav1.Time{Time: since}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"from before the stop, still shown Ready", pod(since.Add(-time.Hour), corev1.ConditionTrue), "container relay not restarted yet"},
		{"restarted, not Ready", pod(since.Add(time.Second), corev1.ConditionFalse), "not Ready"},
		{"restarted and Ready", pod(since.Add(time.Second), corev1.ConditionTrue), ""},
		{"container waiting", waiting, "container relay not running"},
		{"no status yet", noStatus, "no container status yet"},
		{"being deleted", deleting, ""},
	} {
		if got := notBack(tc.pod, since); got != tc.want {
			t.Errorf("%s: notBack = %q, want %q", tc.name, got, tc.want)
		}
	}
}
