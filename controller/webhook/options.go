package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Defaults for Options.
const (
	DefaultListenAddress     = ":9443"
	DefaultConfigurationName = "pier-validating"
	DefaultSecretName        = "pier-webhook-cert"
	DefaultServicePort       = 443
	DefaultCertValidity      = 365 * 24 * time.Hour
	DefaultCheckInterval     = time.Minute
	DefaultReadTimeout       = 10 * time.Second
)

// MinCertValidity is the shortest CertValidity New accepts: a third of it
// must leave room to publish a new CA well before the old one expires.
const MinCertValidity = time.Hour

// Path is where the server answers admission reviews.
const Path = "/validate"

// ErrInvalidOptions is wrapped by every error New returns for bad Options.
var ErrInvalidOptions = errors.New("invalid webhook options")

// Options configures a Server.
type Options struct {
	// Kube reads and writes the certificate Secret and the
	// ValidatingWebhookConfiguration. Required.
	Kube kubernetes.Interface
	// Objects reads Pier's current custom resources from the API server
	// (direct, uncached). Required.
	Objects ObjectsReader
	// Cached, when set, reads them from an informer cache: requests are
	// decided from it, and Objects is read only to confirm a refusal (the
	// cache may not hold an object created a moment ago). An object the
	// cache lets through wrongly is still reported by the controller.
	Cached ObjectsReader
	// Namespace holds Pier's custom resources and the certificate Secret.
	// Required.
	Namespace string

	// ServiceName and ServicePort name the Service in Namespace through
	// which the API server reaches the webhook (clientConfig.service). Set
	// either ServiceName or URL.
	ServiceName string
	ServicePort int32
	// URL is the base https URL the API server calls instead of a Service,
	// such as https://127.0.0.1:9443 when the API server runs outside the
	// cluster (tests, the lab). Path is appended. Its host goes in the
	// serving certificate.
	URL string

	// ListenAddress is where the HTTPS server listens. Default ":9443".
	ListenAddress string
	// ConfigurationName is the ValidatingWebhookConfiguration whose
	// caBundle the server keeps current; it is created when absent.
	// Default "pier-validating".
	ConfigurationName string
	// SecretName is the Secret in SecretNamespace holding the
	// certificates. Default "pier-webhook-cert".
	SecretName string
	// SecretNamespace holds the certificate Secret; default Namespace. A
	// namespace of its own keeps the serving key away from whoever may read
	// the Secrets in Namespace (the speakers read their BGP passwords
	// there).
	SecretNamespace string
	// PasswordNamespace holds the BGP password Secrets; a BGPPeer naming
	// another namespace is refused (config.Objects.PasswordNamespace).
	// Default config.DefaultPasswordNamespace.
	PasswordNamespace string
	// CertValidity is the lifetime of each CA and serving certificate; a new
	// one is issued when less than a third is left. Default one year,
	// at least MinCertValidity.
	CertValidity time.Duration
	// CheckInterval is how often the certificate is checked besides when the
	// Secret or the configuration changes. Default one minute.
	CheckInterval time.Duration
	// ReadTimeout bounds how long a request (headers and body) may take to
	// arrive before the connection is closed. Default 10 s, twice the API
	// server's own webhook timeout.
	ReadTimeout time.Duration

	Logger  *slog.Logger
	Clock   clock.Clock
	Metrics *Metrics
}

func (o *Options) validate() error {
	if o.Kube == nil || o.Objects == nil {
		return fmt.Errorf("%w: Kube and Objects are required", ErrInvalidOptions)
	}
	if o.Namespace == "" {
		return fmt.Errorf("%w: Namespace is required", ErrInvalidOptions)
	}
	if (o.ServiceName == "") == (o.URL == "") {
		return fmt.Errorf("%w: set exactly one of ServiceName and URL", ErrInvalidOptions)
	}
	if o.URL != "" {
		if _, err := parseBaseURL(o.URL); err != nil {
			return fmt.Errorf("%w: URL: %w", ErrInvalidOptions, err)
		}
	}
	if o.CertValidity != 0 && o.CertValidity < MinCertValidity {
		return fmt.Errorf("%w: CertValidity %v is shorter than %v", ErrInvalidOptions, o.CertValidity, MinCertValidity)
	}
	if o.CheckInterval < 0 || o.ServicePort < 0 || o.ReadTimeout < 0 {
		return fmt.Errorf("%w: negative CheckInterval, ServicePort or ReadTimeout", ErrInvalidOptions)
	}
	return nil
}

func (o *Options) defaults() {
	if o.ListenAddress == "" {
		o.ListenAddress = DefaultListenAddress
	}
	if o.ConfigurationName == "" {
		o.ConfigurationName = DefaultConfigurationName
	}
	if o.SecretNamespace == "" {
		o.SecretNamespace = o.Namespace
	}
	if o.SecretName == "" {
		o.SecretName = DefaultSecretName
	}
	if o.ServicePort == 0 {
		o.ServicePort = DefaultServicePort
	}
	if o.CertValidity == 0 {
		o.CertValidity = DefaultCertValidity
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// parseBaseURL accepts an https URL with a host and no path beyond "/",
// query or fragment.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "https":
		return nil, fmt.Errorf("%q: scheme must be https", s)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%q: no host", s)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.User != nil:
		return nil, fmt.Errorf("%q: only scheme, host and port are allowed", s)
	}
	return u, nil
}

// servingNames are the names the serving certificate must cover: the
// Service's DNS names, or the URL's host.
func (o *Options) servingNames() certNames {
	if o.URL != "" {
		u, _ := parseBaseURL(o.URL) // validated
		if ip := net.ParseIP(u.Hostname()); ip != nil {
			return certNames{IPs: []net.IP{ip}}
		}
		return certNames{DNS: []string{u.Hostname()}}
	}
	svc := o.ServiceName + "." + o.Namespace + ".svc"
	return certNames{DNS: []string{svc, svc + ".cluster.local"}}
}

// webhookURL is clientConfig.url in URL mode.
func (o *Options) webhookURL() string {
	u, _ := parseBaseURL(o.URL) // validated
	u.Path = Path
	return u.String()
}
