package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// WebhookName is the name of the webhook in the configuration New creates.
const WebhookName = "validate.pier.dev"

// Resources are the resources the webhook validates.
var Resources = []string{"ipaddresspools", "l2advertisements", "bgppeers", "bgpadvertisements", "relays"}

// shutdownTimeout bounds the wait for requests in flight when Run ends.
const shutdownTimeout = 5 * time.Second

// A request (headers and body, at most maxBodyBytes) must arrive within
// Options.ReadTimeout and its answer be written within writeTimeout of that, or the
// connection is closed: a slow or stalled client holds no goroutine and no
// connection for long. The API server gives up after its own 5 s webhook
// timeout anyway. idleTimeout lets it reuse a connection between requests.
const (
	writeTimeout = 15 * time.Second
	idleTimeout  = 90 * time.Second
)

// Server is the webhook's HTTPS server and certificate rotator.
type Server struct {
	opts    Options
	log     *slog.Logger
	rot     *rotator
	handler *handler
}

// New validates opts and returns a Server; it starts nothing.
func New(opts Options) (*Server, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	s := &Server{opts: opts, log: opts.Logger.With("component", "webhook")}
	s.rot = &rotator{
		kube:              opts.Kube,
		namespace:         opts.SecretNamespace,
		secretName:        opts.SecretName,
		configurationName: opts.ConfigurationName,
		names:             opts.servingNames(),
		validity:          opts.CertValidity,
		clock:             opts.Clock,
		log:               s.log,
		metrics:           opts.Metrics,
		configuration:     s.configuration,
	}
	s.handler = &handler{namespace: opts.Namespace, passwordNamespace: opts.PasswordNamespace, objects: opts.Objects, cached: opts.Cached, log: s.log, metrics: opts.Metrics}
	return s, nil
}

// Handler answers admission reviews on Path; Run serves it over TLS.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Path, s.handler)
	return mux
}

// Ready reports whether a serving certificate is loaded, for a readiness
// probe.
func (s *Server) Ready() bool { return s.rot.served.Load() != nil }

// ReadyCheck fails until a serving certificate is loaded; it fits
// controller-runtime's healthz.Checker for a readiness probe.
func (s *Server) ReadyCheck(*http.Request) error {
	if !s.Ready() {
		return errors.New("webhook serving certificate not loaded yet")
	}
	return nil
}

// Start is Run, so that a controller-runtime manager can run the Server
// (mgr.Add(s)).
func (s *Server) Start(ctx context.Context) error { return s.Run(ctx) }

// NeedLeaderElection is false: every replica serves the webhook, since the
// API server calls any of them through the Service.
func (s *Server) NeedLeaderElection() bool { return false }

// Run serves the webhook and keeps its certificate current until ctx ends.
// It returns an error only when it cannot listen or serve.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.ListenAddress)
	if err != nil {
		return fmt.Errorf("webhook listen on %s: %w", s.opts.ListenAddress, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	trigger := make(chan struct{}, 1)
	stopWatch, err := s.watch(ctx, trigger)
	if err != nil {
		ln.Close()
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.rot.run(ctx, s.opts.CheckInterval, trigger) })
	err = s.serve(ctx, ln)
	cancel() // serve may fail while ctx lives: stop the rest before waiting
	stopWatch()
	wg.Wait()
	return err
}

func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.rot.getCertificate},
		ReadHeaderTimeout: s.opts.ReadTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	s.log.Info("webhook serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("webhook serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("webhook serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

// watch signals trigger whenever the certificate Secret or the
// configuration changes, so a rotation by another replica or an overwritten
// caBundle is picked up at once. The returned function waits for the
// informers to stop after ctx ends.
func (s *Server) watch(ctx context.Context, trigger chan<- struct{}) (func(), error) {
	notify := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	secrets := informers.NewSharedInformerFactoryWithOptions(s.opts.Kube, 0,
		informers.WithNamespace(s.opts.SecretNamespace), byName(s.opts.SecretName))
	configs := informers.NewSharedInformerFactoryWithOptions(s.opts.Kube, 0, byName(s.opts.ConfigurationName))
	if _, err := secrets.Core().V1().Secrets().Informer().AddEventHandler(h); err != nil {
		return nil, fmt.Errorf("watch secret %s/%s: %w", s.opts.SecretNamespace, s.opts.SecretName, err)
	}
	if _, err := configs.Admissionregistration().V1().ValidatingWebhookConfigurations().Informer().AddEventHandler(h); err != nil {
		return nil, fmt.Errorf("watch ValidatingWebhookConfiguration %s: %w", s.opts.ConfigurationName, err)
	}
	secrets.Start(ctx.Done())
	configs.Start(ctx.Done())
	return func() { secrets.Shutdown(); configs.Shutdown() }, nil
}

func byName(name string) informers.SharedInformerOption {
	return informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	})
}

// configuration is the ValidatingWebhookConfiguration created when none
// exists. See the package documentation for the failure policy.
func (s *Server) configuration(caBundle []byte) *admissionregistrationv1.ValidatingWebhookConfiguration {
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: caBundle}
	if s.opts.URL != "" {
		cc.URL = ptr.To(s.opts.webhookURL())
	} else {
		cc.Service = &admissionregistrationv1.ServiceReference{
			Namespace: s.opts.Namespace, Name: s.opts.ServiceName,
			Path: ptr.To(Path), Port: ptr.To(s.opts.ServicePort),
		}
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: s.opts.ConfigurationName, Labels: labels()},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         WebhookName,
			ClientConfig: cc,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{v1alpha1.GroupVersion.Group},
					APIVersions: []string{v1alpha1.GroupVersion.Version},
					Resources:   Resources,
					Scope:       ptr.To(admissionregistrationv1.NamespacedScope),
				},
			}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](5),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}
