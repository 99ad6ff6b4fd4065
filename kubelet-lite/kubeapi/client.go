// Package kubeapi is kubelet-lite's Kubernetes client: the few resources a
// kubelet reads and writes (Pods, Nodes, Leases, Events, Secrets,
// ConfigMaps, service-account tokens, certificate signing requests, the
// storage objects a CSI volume is mounted from),
// typed, over client-go's REST client, with only their API groups in its
// scheme.
//
// client-go's clientset registers and links every API group; for a
// process that needs three of them that is most of its code, and so of its
// resident memory. The methods keep the clientset's shapes
// (CoreV1().Pods(ns).Get(ctx, name, opts)), so code reads the same.
package kubeapi

import (
	"context"
	"fmt"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
	params = runtime.NewParameterCodec(scheme)
)

func init() {
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(coordinationv1.AddToScheme(scheme))
	utilruntime.Must(authenticationv1.AddToScheme(scheme))
	utilruntime.Must(authorizationv1.AddToScheme(scheme))
	utilruntime.Must(certificatesv1.AddToScheme(scheme))
	utilruntime.Must(storagev1.AddToScheme(scheme))
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
}

// Client speaks to one API server.
type Client struct {
	core, coordination, authn, authz, certs, storage *rest.RESTClient
}

// New returns a client for the API server cfg points at.
func New(cfg *rest.Config) (*Client, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	core, err := restClient(cfg, httpClient, "/api", corev1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	coordination, err := restClient(cfg, httpClient, "/apis", coordinationv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	authn, err := restClient(cfg, httpClient, "/apis", authenticationv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	authz, err := restClient(cfg, httpClient, "/apis", authorizationv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	certs, err := restClient(cfg, httpClient, "/apis", certificatesv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	storage, err := restClient(cfg, httpClient, "/apis", storagev1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	return &Client{core: core, coordination: coordination, authn: authn, authz: authz, certs: certs, storage: storage}, nil
}

// ReviewToken asks the API server who a bearer token belongs to (the
// kubelet API's token authentication).
func (c *Client) ReviewToken(ctx context.Context, tr *authenticationv1.TokenReview) (*authenticationv1.TokenReview, error) {
	out := &authenticationv1.TokenReview{}
	err := c.authn.Post().Resource("tokenreviews").Body(tr).Do(ctx).Into(out)
	return out, err
}

// ReviewAccess asks the API server whether a user may do something (the
// kubelet API's Webhook authorization).
func (c *Client) ReviewAccess(ctx context.Context, sar *authorizationv1.SubjectAccessReview) (*authorizationv1.SubjectAccessReview, error) {
	out := &authorizationv1.SubjectAccessReview{}
	err := c.authz.Post().Resource("subjectaccessreviews").Body(sar).Do(ctx).Into(out)
	return out, err
}

func restClient(base *rest.Config, httpClient *http.Client, apiPath string, gv schema.GroupVersion) (*rest.RESTClient, error) {
	cfg := rest.CopyConfig(base)
	cfg.APIPath, cfg.GroupVersion = apiPath, &gv
	cfg.NegotiatedSerializer = codecs.WithoutConversion()
	rc, err := rest.RESTClientForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client for %s: %w", gv, err)
	}
	return rc, nil
}

// CoreV1 is the core API group.
func (c *Client) CoreV1() Core { return Core{c.core} }

// CoordinationV1 is the coordination.k8s.io API group.
func (c *Client) CoordinationV1() Coordination { return Coordination{c.coordination} }

// CertificatesV1 is the certificates.k8s.io group: the kubelet's client
// certificate requests.
func (c *Client) CertificatesV1() Certificates { return Certificates{c.certs} }

// StorageV1 is the storage.k8s.io group: what CSI volumes need.
func (c *Client) StorageV1() Storage { return Storage{c.storage} }

// Storage holds the storage.k8s.io group's resources.
type Storage struct{ rc *rest.RESTClient }

func (s Storage) CSINodes() Resource[storagev1.CSINode, *storagev1.CSINode] {
	return Resource[storagev1.CSINode, *storagev1.CSINode]{s.rc, "", "csinodes"}
}

func (s Storage) CSIDrivers() Resource[storagev1.CSIDriver, *storagev1.CSIDriver] {
	return Resource[storagev1.CSIDriver, *storagev1.CSIDriver]{s.rc, "", "csidrivers"}
}

func (s Storage) VolumeAttachments() Resource[storagev1.VolumeAttachment, *storagev1.VolumeAttachment] {
	return Resource[storagev1.VolumeAttachment, *storagev1.VolumeAttachment]{s.rc, "", "volumeattachments"}
}

// Certificates holds the certificates.k8s.io group's resources.
type Certificates struct{ rc *rest.RESTClient }

func (c Certificates) CertificateSigningRequests() Resource[certificatesv1.CertificateSigningRequest, *certificatesv1.CertificateSigningRequest] {
	return Resource[certificatesv1.CertificateSigningRequest, *certificatesv1.CertificateSigningRequest]{c.rc, "", "certificatesigningrequests"}
}

// Core holds the core group's resources.
type Core struct{ rc *rest.RESTClient }

func (c Core) Pods(ns string) Resource[corev1.Pod, *corev1.Pod] {
	return Resource[corev1.Pod, *corev1.Pod]{c.rc, ns, "pods"}
}

func (c Core) Nodes() Resource[corev1.Node, *corev1.Node] {
	return Resource[corev1.Node, *corev1.Node]{c.rc, "", "nodes"}
}

func (c Core) Events(ns string) Resource[corev1.Event, *corev1.Event] {
	return Resource[corev1.Event, *corev1.Event]{c.rc, ns, "events"}
}

func (c Core) Secrets(ns string) Resource[corev1.Secret, *corev1.Secret] {
	return Resource[corev1.Secret, *corev1.Secret]{c.rc, ns, "secrets"}
}

func (c Core) ConfigMaps(ns string) Resource[corev1.ConfigMap, *corev1.ConfigMap] {
	return Resource[corev1.ConfigMap, *corev1.ConfigMap]{c.rc, ns, "configmaps"}
}

func (c Core) Services(ns string) Resource[corev1.Service, *corev1.Service] {
	return Resource[corev1.Service, *corev1.Service]{c.rc, ns, "services"}
}

func (c Core) PersistentVolumeClaims(ns string) Resource[corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaim] {
	return Resource[corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaim]{c.rc, ns, "persistentvolumeclaims"}
}

func (c Core) PersistentVolumes() Resource[corev1.PersistentVolume, *corev1.PersistentVolume] {
	return Resource[corev1.PersistentVolume, *corev1.PersistentVolume]{c.rc, "", "persistentvolumes"}
}

func (c Core) ServiceAccounts(ns string) ServiceAccounts { return ServiceAccounts{c.rc, ns} }

// Coordination holds the coordination.k8s.io group's resources.
type Coordination struct{ rc *rest.RESTClient }

func (c Coordination) Leases(ns string) Resource[coordinationv1.Lease, *coordinationv1.Lease] {
	return Resource[coordinationv1.Lease, *coordinationv1.Lease]{c.rc, ns, "leases"}
}

// Resource is one resource of a group, in a namespace ("" for cluster
// scoped ones). T is its Go type.
type Resource[T any, PT interface {
	*T
	runtime.Object
}] struct {
	rc       *rest.RESTClient
	ns, name string
}

func (r Resource[T, PT]) req(verb string) *rest.Request {
	return r.rc.Verb(verb).NamespaceIfScoped(r.ns, r.ns != "").Resource(r.name)
}

// Get reads the object called name.
func (r Resource[T, PT]) Get(ctx context.Context, name string, opts metav1.GetOptions) (PT, error) {
	out := PT(new(T))
	err := r.req(http.MethodGet).Name(name).VersionedParams(&opts, params).Do(ctx).Into(out)
	return out, err
}

// Create writes a new object.
func (r Resource[T, PT]) Create(ctx context.Context, obj PT, opts metav1.CreateOptions) (PT, error) {
	out := PT(new(T))
	err := r.req(http.MethodPost).VersionedParams(&opts, params).Body(obj).Do(ctx).Into(out)
	return out, err
}

// Update replaces an object's spec and metadata.
func (r Resource[T, PT]) Update(ctx context.Context, obj PT, opts metav1.UpdateOptions) (PT, error) {
	return r.put(ctx, obj, opts, "")
}

// UpdateStatus replaces an object's status.
func (r Resource[T, PT]) UpdateStatus(ctx context.Context, obj PT, opts metav1.UpdateOptions) (PT, error) {
	return r.put(ctx, obj, opts, "status")
}

func (r Resource[T, PT]) put(ctx context.Context, obj PT, opts metav1.UpdateOptions, sub string) (PT, error) {
	meta, err := metaOf(obj)
	if err != nil {
		return nil, err
	}
	out := PT(new(T))
	req := r.req(http.MethodPut).Name(meta.GetName())
	if sub != "" {
		req = req.SubResource(sub)
	}
	err = req.VersionedParams(&opts, params).Body(obj).Do(ctx).Into(out)
	return out, err
}

// Delete deletes the object called name.
func (r Resource[T, PT]) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return r.req(http.MethodDelete).Name(name).Body(&opts).Do(ctx).Error()
}

// List reads the objects matching opts into list.
func (r Resource[T, PT]) List(ctx context.Context, opts metav1.ListOptions, list runtime.Object) error {
	return r.req(http.MethodGet).VersionedParams(&opts, params).Do(ctx).Into(list)
}

// Watch streams the changes matching opts.
func (r Resource[T, PT]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return r.req(http.MethodGet).VersionedParams(&opts, params).Watch(ctx)
}

// ServiceAccounts holds the one service-account call a kubelet makes.
type ServiceAccounts struct {
	rc *rest.RESTClient
	ns string
}

// CreateToken asks the TokenRequest API for a token of service account name.
func (s ServiceAccounts) CreateToken(ctx context.Context, name string, tr *authenticationv1.TokenRequest, opts metav1.CreateOptions) (*authenticationv1.TokenRequest, error) {
	out := &authenticationv1.TokenRequest{}
	err := s.rc.Post().Namespace(s.ns).Resource("serviceaccounts").Name(name).SubResource("token").
		VersionedParams(&opts, params).Body(tr).Do(ctx).Into(out)
	return out, err
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return m, nil
}
