package podlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Namespace is where the tests install Pier.
const Namespace = "pier-system"

// Helm runs the lab's helm against the cluster as the admin.
func (e *Env) Helm(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.bins.Helm, append(args, "--kubeconfig", e.Cluster.Kubeconfig)...)
	cmd.Dir = e.Root
	cmd.Env = append(cmd.Environ(), "HELM_CACHE_HOME="+filepath.Join(e.Dir, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(e.Dir, "helm", "config"), "HELM_DATA_HOME="+filepath.Join(e.Dir, "helm", "data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Kubectl runs the cached kubectl against the cluster as the admin.
func (e *Env) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.bins.KubeDir, "kubectl"), append([]string{"--kubeconfig", e.Cluster.Kubeconfig}, args...)...)
	cmd.Dir = e.Root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ChartValues are the values that point the chart at the lab registry.
func (e *Env) ChartValues(tag string) []string {
	return []string{"--set", "image.registry=" + e.Registry, "--set", "image.repository=" + PierRepository, "--set", "image.tag=" + tag}
}

// WaitRollout waits until the Deployments and DaemonSets of ns named in
// names are fully rolled out and Ready; on timeout the error describes
// the namespace's Pods and events.
func (e *Env) WaitRollout(ctx context.Context, ns string, timeout time.Duration, deployments, daemonSets []string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		for _, name := range deployments {
			d, err := e.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			if !deploymentDone(d) {
				last = fmt.Sprintf("deployment %s: %d/%d ready, %d updated", name, d.Status.ReadyReplicas, *d.Spec.Replicas, d.Status.UpdatedReplicas)
				return false, nil
			}
		}
		for _, name := range daemonSets {
			ds, err := e.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			if !daemonSetDone(ds) {
				last = fmt.Sprintf("daemonset %s: %d/%d ready, %d updated", name, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled, ds.Status.UpdatedNumberScheduled)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("rollout in %s: %w (last: %s)\n%s", ns, err, last, e.Describe(context.Background(), ns))
	}
	return nil
}

func deploymentDone(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.ReadyReplicas == want && s.Replicas == want
}

func daemonSetDone(ds *appsv1.DaemonSet) bool {
	s := ds.Status
	return s.ObservedGeneration >= ds.Generation && s.DesiredNumberScheduled > 0 &&
		s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberReady == s.DesiredNumberScheduled && s.NumberUnavailable == 0
}

// Describe lists ns's Pods with their state and the namespace's recent
// events: what a person would look at first when a rollout hangs.
func (e *Env) Describe(ctx context.Context, ns string) string {
	var b strings.Builder
	pods, err := e.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s on %s: %s", p.Name, p.Spec.NodeName, p.Status.Phase)
		for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			fmt.Fprintf(&b, " [%s ready=%t restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
			if w := cs.State.Waiting; w != nil {
				fmt.Fprintf(&b, " waiting %s: %s", w.Reason, w.Message)
			}
			if t := cs.LastTerminationState.Terminated; t != nil {
				fmt.Fprintf(&b, " last exit %d %s: %s", t.ExitCode, t.Reason, t.Message)
			}
			b.WriteString("]")
		}
		b.WriteString("\n")
	}
	evs, err := e.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		items := evs.Items
		sort.Slice(items, func(i, j int) bool { return items[i].LastTimestamp.Before(&items[j].LastTimestamp) })
		if len(items) > 30 {
			items = items[len(items)-30:]
		}
		for _, ev := range items {
			fmt.Fprintf(&b, "event %s %s/%s: %s: %s\n", ev.Type, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Reason, ev.Message)
		}
	}
	return b.String()
}

// L2Values configure the chart with the lab's L2 pool.
const L2Values = `config:
  pools:
  - name: l2
    spec: {addresses: ["198.51.100.200-198.51.100.250"]}
  l2Advertisements:
  - name: l2
    spec: {ipAddressPools: [l2]}
`

// InstallPier helm-installs Pier as release pier from tag of the lab
// registry, with L2Values, a relay on every node and the further helm
// arguments extra, and returns once helm has; WaitRollout waits for the
// Pods.
func (e *Env) InstallPier(ctx context.Context, tag string, extra ...string) error {
	values := filepath.Join(e.Dir, "values-l2.yaml")
	if err := os.WriteFile(values, []byte(L2Values), 0o600); err != nil {
		return err
	}
	if err := e.LabelNodes(ctx, "pier.dev/relay", "true"); err != nil {
		return err
	}
	args := append([]string{"install", "pier", "charts/pier", "-n", Namespace, "--create-namespace",
		"--set", "relay.enabled=true", "-f", values}, e.ChartValues(tag)...)
	_, err := e.Helm(ctx, append(args, extra...)...)
	return err
}

// LabelNodes sets label key=value on every node.
func (e *Env) LabelNodes(ctx context.Context, key, value string) error {
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, key, value)
	for _, n := range e.Nodes {
		if _, err := e.Client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("label node %s: %w", n.Name, err)
		}
	}
	return nil
}

// PodOn returns the name of the Pod in ns matching selector on node.
func (e *Env) PodOn(ctx context.Context, ns, selector, node string) (string, error) {
	pods, err := e.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector, FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return "", err
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			return p.Name, nil
		}
	}
	return "", fmt.Errorf("no pod %q in %s on %s", selector, ns, node)
}

// PodLogs returns the logs of the Pods that match selector in ns, by Pod
// name: the lines that contain one of grep (all lines when none), or why
// the logs could not be read.
func (e *Env) PodLogs(ctx context.Context, ns, selector string, grep ...string) (map[string][]string, error) {
	pods, err := e.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, p := range pods.Items {
		logs, err := e.Kubectl(ctx, "-n", ns, "logs", p.Name)
		if err != nil { // a Pod going away: say so, read the others
			out[p.Name] = []string{err.Error()}
			continue
		}
		for _, line := range strings.Split(logs, "\n") {
			if len(grep) == 0 || slices.ContainsFunc(grep, func(g string) bool { return strings.Contains(line, g) }) {
				out[p.Name] = append(out[p.Name], line)
			}
		}
	}
	return out, nil
}

// WaitNoPods waits until ns has no Pods left.
func (e *Env) WaitNoPods(ctx context.Context, ns string, timeout time.Duration) error {
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := e.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("pods left in %s: %w\n%s", ns, err, e.Describe(context.Background(), ns))
	}
	return nil
}
