// Package cri is kubelet-lite's client of a CRI runtime (containerd):
// one gRPC connection for the runtime and image services, with a
// per-call timeout so a hung runtime never wedges a pod worker.
package cri

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/metrics"
)

// DefaultEndpoint is containerd's CRI socket.
const DefaultEndpoint = "unix:///run/containerd/containerd.sock"

// CallTimeout bounds one CRI call; image pulls get PullTimeout.
const (
	CallTimeout = 2 * time.Minute
	PullTimeout = 10 * time.Minute
)

// Client talks to a CRI runtime.
type Client struct {
	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient
	conn    *grpc.ClientConn
}

// Dial connects to endpoint ("unix:///path" or a bare socket path). The
// connection is lazy: a runtime that is down shows up as call errors,
// and the node as NotReady, until it comes back.
func Dial(endpoint string) (*Client, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "unix://" + endpoint
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)), grpc.WithUnaryInterceptor(countOperations))
	if err != nil {
		return nil, fmt.Errorf("connect to container runtime %s: %w (check --container-runtime-endpoint)", endpoint, err)
	}
	return &Client{Runtime: runtimeapi.NewRuntimeServiceClient(conn), Images: runtimeapi.NewImageServiceClient(conn), conn: conn}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Ctx returns a context bounded by CallTimeout.
func Ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, CallTimeout)
}

// Version is the runtime's name and version as nodes report it:
// "containerd://1.6.20".
func (c *Client) Version(ctx context.Context) (string, error) {
	ctx, cancel := Ctx(ctx)
	defer cancel()
	v, err := c.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "", fmt.Errorf("runtime version: %w", err)
	}
	return v.RuntimeName + "://" + v.RuntimeVersion, nil
}

// Ready reports whether the runtime answers and says it and its network
// are ready; the error says why not.
func (c *Client) Ready(ctx context.Context) error {
	ctx, cancel := Ctx(ctx)
	defer cancel()
	st, err := c.Runtime.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return fmt.Errorf("container runtime status: %w", err)
	}
	for _, cond := range st.GetStatus().GetConditions() {
		if (cond.Type == runtimeapi.RuntimeReady || cond.Type == runtimeapi.NetworkReady) && !cond.Status {
			return fmt.Errorf("container runtime: %s is false: %s %s", cond.Type, cond.Reason, cond.Message)
		}
	}
	return nil
}

// countOperations records every runtime call in the kubelet's metrics,
// by operation as upstream names them (ListContainers: list_containers).
func countOperations(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	op := operationName(method)
	began := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	metrics.RuntimeOperations.Inc(op)
	metrics.RuntimeOperationsTime.Since(began, op)
	if err != nil {
		metrics.RuntimeOperationsErrors.Inc(op)
	}
	return err
}

// operationName turns "/runtime.v1.RuntimeService/ListPodSandbox" into
// "list_pod_sandbox".
func operationName(method string) string {
	name := method[strings.LastIndexByte(method, '/')+1:]
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// CgroupDriver asks the runtime which cgroup driver it uses ("cgroupfs"
// or "systemd"), as the upstream kubelet does before it picks its own:
// the two must agree or pods land in cgroups nobody manages. "" when
// the runtime does not say (containerd before 1.7 lacks the call).
func (c *Client) CgroupDriver(ctx context.Context) (string, error) {
	ctx, cancel := Ctx(ctx)
	defer cancel()
	rc, err := c.Runtime.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	if status.Code(err) == codes.Unimplemented {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("runtime config: %w", err)
	}
	if rc.GetLinux() == nil {
		return "", nil // SYSTEMD is the enum's zero: an absent answer is not one
	}
	switch rc.GetLinux().GetCgroupDriver() {
	case runtimeapi.CgroupDriver_SYSTEMD:
		return "systemd", nil
	case runtimeapi.CgroupDriver_CGROUPFS:
		return "cgroupfs", nil
	}
	return "", nil
}

// Upstream's limits on the Node's status.images.
const (
	maxNodeImages    = 50
	maxNamesPerImage = 5
)

// NodeImages lists the runtime's images as the Node's status.images
// reports them, for the scheduler's image locality: the largest 50,
// each with up to 5 names (digests first, then tags).
func (c *Client) NodeImages(ctx context.Context) ([]corev1.ContainerImage, error) {
	ctx, cancel := Ctx(ctx)
	defer cancel()
	resp, err := c.Images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	imgs := resp.GetImages()
	slices.SortStableFunc(imgs, func(a, b *runtimeapi.Image) int { return cmp.Compare(b.GetSize(), a.GetSize()) })
	out := make([]corev1.ContainerImage, 0, min(len(imgs), maxNodeImages))
	for _, img := range imgs {
		if len(out) == maxNodeImages {
			break
		}
		names := append(slices.Clone(img.GetRepoDigests()), img.GetRepoTags()...)
		if len(names) == 0 {
			continue
		}
		out = append(out, corev1.ContainerImage{Names: names[:min(len(names), maxNamesPerImage)], SizeBytes: int64(img.GetSize())})
	}
	return out, nil
}
