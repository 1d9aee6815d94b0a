// Package configstatus writes a ConfigurationStatus: whether one Pier
// daemon on one node took the whole configuration, and if not, which
// objects and fields it left out (as config.Parse and config.ParseRelay
// name them). The daemon hands every parse result to [Writer.Set]; the
// writer writes only what changed, apart from the daemon's loop.
package configstatus

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// Options configure a Writer.
type Options struct {
	Client    client.Client
	Namespace string // Pier's, where the object lives
	Node      string
	Component string // v1alpha1.ComponentSpeaker or ComponentRelay
	// Owner, when set, owns the object (the daemon's Pod).
	Owner *metav1.OwnerReference
	// Every is the least time between two writes; default 1s. A failed
	// write is tried again after 5 Every.
	Every time.Duration
	// Verify is how often the object is read back and repaired even when
	// nothing changed (someone deleted it); default 5 minutes.
	Verify time.Duration
	Clock  clock.Clock
	Logger *slog.Logger
}

// Writer keeps one ConfigurationStatus up to date.
type Writer struct {
	opts  Options
	log   *slog.Logger
	mu    sync.Mutex
	want  []v1alpha1.ConfigurationProblem
	set   bool // Set was called: want is known
	dirty chan struct{}
	wrote []v1alpha1.ConfigurationProblem
	done  bool // wrote holds what the object has
}

// New validates opts; it starts nothing.
func New(opts Options) (*Writer, error) {
	if opts.Client == nil || opts.Namespace == "" || opts.Node == "" || opts.Component == "" {
		return nil, errors.New("configstatus: client, namespace, node and component are required")
	}
	if opts.Every < 0 || opts.Verify < 0 {
		return nil, fmt.Errorf("configstatus: periods %v and %v must not be negative", opts.Every, opts.Verify)
	}
	opts.Every = cmp.Or(opts.Every, time.Second)
	opts.Verify = cmp.Or(opts.Verify, 5*time.Minute)
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Writer{
		opts: opts, dirty: make(chan struct{}, 1),
		log: opts.Logger.With("component", "configstatus", "node", opts.Node),
	}, nil
}

// Set takes a parse result (nil: everything parsed). It never waits for
// the API server; the latest result wins.
func (w *Writer) Set(err error) {
	p := Problems(err)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.set && slices.Equal(p, w.want) {
		return
	}
	w.want, w.set = p, true
	select {
	case w.dirty <- struct{}{}:
	default:
	}
}

// Problems turns a parse error into the status's problems, in order; an
// error that is no config.Error becomes one problem with its message only.
func Problems(err error) []v1alpha1.ConfigurationProblem {
	if err == nil {
		return nil
	}
	var out []v1alpha1.ConfigurationProblem
	for _, e := range config.Errors(err) {
		out = append(out, v1alpha1.ConfigurationProblem{
			Kind: e.Kind, Namespace: e.Namespace, Name: e.Name, Field: e.Field, Message: e.Message,
		})
	}
	if len(out) == 0 {
		out = []v1alpha1.ConfigurationProblem{{Message: err.Error()}}
	}
	return out
}

// Run writes the status after each change (at most once per Every) until
// ctx ends; a failed write is retried after 5 Every, and the object is read
// back every Verify.
func (w *Writer) Run(ctx context.Context) error {
	forget := func() {
		w.mu.Lock()
		w.done = false // read it back
		w.mu.Unlock()
	}
	return WriteLoop(ctx, LoopOptions{Every: w.opts.Every, Verify: w.opts.Verify, Clock: w.opts.Clock,
		Dirty: w.dirty, Forget: forget, Write: w.write, Log: w.log, What: "configuration status"})
}

// LoopOptions are a status writer's loop (WriteLoop).
type LoopOptions struct {
	Every, Verify time.Duration
	Clock         clock.Clock
	// Dirty has a value after each change to write.
	Dirty <-chan struct{}
	// Forget makes the next Write read back what is stored (every Verify,
	// and before each retry of a failed Write).
	Forget func()
	Write  func(context.Context) error
	Log    *slog.Logger
	What   string // for the log: "configuration status"
}

// WriteLoop is the loop status writers share: Write after each change, at
// most once per Every, until ctx ends; after a failed Write it waits 5
// Every, and then and every Verify it Forgets and writes again. It logs when writes
// start and stop failing.
func WriteLoop(ctx context.Context, o LoopOptions) error {
	failing := false
	for {
		retry := o.Verify
		if failing {
			retry = 5 * o.Every
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.Dirty:
		case <-o.Clock.After(retry):
			o.Forget()
		}
		err := o.Write(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			o.Log.Warn(o.What+" not written; retrying", "err", err)
		case err == nil && failing:
			o.Log.Info(o.What + " written again")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return nil
		case <-o.Clock.After(o.Every):
		}
	}
}

// write makes the object hold the last problems Set, when they differ from
// what it was last known to hold.
func (w *Writer) write(ctx context.Context) error {
	w.mu.Lock()
	want, set, same := w.want, w.set, w.done && slices.Equal(w.want, w.wrote)
	w.mu.Unlock()
	if !set || same {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	obj, err := w.object(ctx)
	if err != nil {
		return err
	}
	st := w.status(want)
	if obj.Status.Valid != st.Valid || !slices.Equal(obj.Status.Problems, st.Problems) ||
		obj.Status.Summary != st.Summary || obj.Status.Node != st.Node || obj.Status.Component != st.Component {
		st.LastChange = &metav1.Time{Time: w.opts.Clock.Now().Truncate(time.Second)}
		obj.Status = st
		if err := w.opts.Client.Status().Update(ctx, obj); err != nil {
			return fmt.Errorf("configuration status %s: %w", obj.Name, err)
		}
		if st.Valid {
			w.log.Info("configuration status: valid")
		} else {
			w.log.Info("configuration status: objects left out", "problems", len(want), "first", st.Summary)
		}
	}
	w.mu.Lock()
	w.wrote, w.done = want, true
	w.mu.Unlock()
	return nil
}

// object reads this writer's object, creating it or taking it over (its
// owner) as needed.
func (w *Writer) object(ctx context.Context) (*v1alpha1.ConfigurationStatus, error) {
	obj := &v1alpha1.ConfigurationStatus{ObjectMeta: metav1.ObjectMeta{
		Name: Name(w.opts.Component, w.opts.Node), Namespace: w.opts.Namespace,
		Labels: map[string]string{v1alpha1.LabelNode: w.opts.Node, v1alpha1.LabelComponent: w.opts.Component},
	}}
	w.own(obj)
	err := w.opts.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	switch {
	case apierrors.IsNotFound(err):
		if err := w.opts.Client.Create(ctx, obj); err != nil {
			return nil, fmt.Errorf("create configuration status %s: %w", obj.Name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("read configuration status %s: %w", obj.Name, err)
	case w.own(obj):
		if err := w.opts.Client.Update(ctx, obj); err != nil {
			return nil, fmt.Errorf("own configuration status %s: %w", obj.Name, err)
		}
	}
	return obj, nil
}

func (w *Writer) own(obj *v1alpha1.ConfigurationStatus) bool {
	o := w.opts.Owner
	if o == nil || len(obj.OwnerReferences) == 1 && obj.OwnerReferences[0].UID == o.UID {
		return false
	}
	obj.OwnerReferences = []metav1.OwnerReference{*o}
	return true
}

func (w *Writer) status(p []v1alpha1.ConfigurationProblem) v1alpha1.ConfigurationStatusStatus {
	st := v1alpha1.ConfigurationStatusStatus{Node: w.opts.Node, Component: w.opts.Component, Valid: len(p) == 0, Problems: p}
	if len(p) > 0 {
		st.Summary = Describe(p[0])
		if len(p) > 1 {
			st.Summary += fmt.Sprintf(" (and %d more)", len(p)-1)
		}
	}
	return st
}

// Describe words one problem as config.Error does:
// "BGPPeer pier-system/r1: spec.peerASN: must be 1-4294967295".
func Describe(p v1alpha1.ConfigurationProblem) string {
	s := ""
	if p.Kind != "" {
		s = config.Ref{Kind: p.Kind, Namespace: p.Namespace, Name: p.Name}.String() + ": "
	}
	if p.Field != "" {
		s += p.Field + ": "
	}
	return s + p.Message
}

// Name is the object name of a component on a node: readable when short,
// ending in a hash when long.
func Name(component, node string) string {
	name := component + "-" + node
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(component + "/" + node))
	return name[:50] + "-" + hex.EncodeToString(sum[:6])
}
