// Package critest puts cri-api's in-memory fake runtime behind the
// gRPC client interfaces kubelet-lite's cri.Client holds, so pod-worker
// behaviour (init order, sidecars, restarts, termination) is tested in
// milliseconds without containerd. Only tests import it.
package critest

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	fake "k8s.io/cri-api/pkg/apis/testing"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
)

// Runtime is the fake runtime and image service behind a cri.Client.
type Runtime struct {
	RT     *fake.FakeRuntimeService
	Images *fake.FakeImageService

	mu      sync.Mutex
	updates map[string]*runtimeapi.LinuxContainerResources // guarded by mu
}

// New returns a fake runtime holding the given images, and a client of it.
func New(images ...string) (*Runtime, *cri.Client) {
	r := &Runtime{RT: fake.NewFakeRuntimeService(), Images: fake.NewFakeImageService(), updates: map[string]*runtimeapi.LinuxContainerResources{}}
	r.Images.SetFakeImages(images)
	return r, &cri.Client{Runtime: runtimeClient{f: r.RT, r: r}, Images: imageClient{f: r.Images}}
}

// Updated is the last UpdateContainerResources a container got; nil
// without one (the fake keeps no resources of its own).
func (r *Runtime) Updated(id string) *runtimeapi.LinuxContainerResources {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.updates[id]
}

// Exit marks a container exited with code, as if its process ended.
func (r *Runtime) Exit(id string, code int32) {
	r.RT.Lock()
	defer r.RT.Unlock()
	if c := r.RT.Containers[id]; c != nil {
		c.State, c.ExitCode, c.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, code, time.Now().UnixNano()
	}
}

// FailStart marks a container as containerd reports one whose process
// never started (StartError): exited with 128, no start time.
func (r *Runtime) FailStart(id string) {
	r.RT.Lock()
	defer r.RT.Unlock()
	if c := r.RT.Containers[id]; c != nil {
		c.State, c.ExitCode, c.StartedAt, c.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, 128, 0, time.Now().UnixNano()
		c.Reason = "StartError"
	}
}

// Containers lists the containers of a pod by container name, oldest
// attempt first.
func (r *Runtime) Containers(podUID string) map[string][]*runtimeapi.ContainerStatus {
	r.RT.Lock()
	defer r.RT.Unlock()
	out := map[string][]*runtimeapi.ContainerStatus{}
	for _, c := range r.RT.Containers {
		if c.Labels["io.kubernetes.pod.uid"] == podUID {
			st := proto.Clone(&c.ContainerStatus).(*runtimeapi.ContainerStatus)
			out[st.Metadata.Name] = append(out[st.Metadata.Name], st)
		}
	}
	for _, cs := range out {
		for i := 1; i < len(cs); i++ {
			for j := i; j > 0 && cs[j].Metadata.Attempt < cs[j-1].Metadata.Attempt; j-- {
				cs[j], cs[j-1] = cs[j-1], cs[j]
			}
		}
	}
	return out
}

// runtimeClient forwards each call to the fake; calls the fake does not
// have (streaming stats) reach the nil embedded interface and panic, a
// loud failure in a test.
type runtimeClient struct {
	runtimeapi.RuntimeServiceClient
	f *fake.FakeRuntimeService
	r *Runtime
}

var _ runtimeapi.RuntimeServiceClient = runtimeClient{}

func (c runtimeClient) Version(ctx context.Context, in *runtimeapi.VersionRequest, _ ...grpc.CallOption) (*runtimeapi.VersionResponse, error) {
	return c.f.Version(ctx, in.Version)
}
func (c runtimeClient) RunPodSandbox(ctx context.Context, in *runtimeapi.RunPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.RunPodSandboxResponse, error) {
	id, err := c.f.RunPodSandbox(ctx, in.Config, in.RuntimeHandler)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, err
}
func (c runtimeClient) StopPodSandbox(ctx context.Context, in *runtimeapi.StopPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.StopPodSandboxResponse, error) {
	return &runtimeapi.StopPodSandboxResponse{}, c.f.StopPodSandbox(ctx, in.PodSandboxId)
}
func (c runtimeClient) RemovePodSandbox(ctx context.Context, in *runtimeapi.RemovePodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.RemovePodSandboxResponse, error) {
	return &runtimeapi.RemovePodSandboxResponse{}, c.f.RemovePodSandbox(ctx, in.PodSandboxId)
}
func (c runtimeClient) PodSandboxStatus(ctx context.Context, in *runtimeapi.PodSandboxStatusRequest, _ ...grpc.CallOption) (*runtimeapi.PodSandboxStatusResponse, error) {
	return c.f.PodSandboxStatus(ctx, in.PodSandboxId, in.Verbose)
}
func (c runtimeClient) ListPodSandbox(ctx context.Context, in *runtimeapi.ListPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.ListPodSandboxResponse, error) {
	items, err := c.f.ListPodSandbox(ctx, in.Filter)
	return &runtimeapi.ListPodSandboxResponse{Items: items}, err
}
func (c runtimeClient) CreateContainer(ctx context.Context, in *runtimeapi.CreateContainerRequest, _ ...grpc.CallOption) (*runtimeapi.CreateContainerResponse, error) {
	id, err := c.f.CreateContainer(ctx, in.PodSandboxId, in.Config, in.SandboxConfig)
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, err
}
func (c runtimeClient) StartContainer(ctx context.Context, in *runtimeapi.StartContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StartContainerResponse, error) {
	return &runtimeapi.StartContainerResponse{}, c.f.StartContainer(ctx, in.ContainerId)
}
func (c runtimeClient) StopContainer(ctx context.Context, in *runtimeapi.StopContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StopContainerResponse, error) {
	return &runtimeapi.StopContainerResponse{}, c.f.StopContainer(ctx, in.ContainerId, in.Timeout)
}
func (c runtimeClient) RemoveContainer(ctx context.Context, in *runtimeapi.RemoveContainerRequest, _ ...grpc.CallOption) (*runtimeapi.RemoveContainerResponse, error) {
	return &runtimeapi.RemoveContainerResponse{}, c.f.RemoveContainer(ctx, in.ContainerId)
}
func (c runtimeClient) ListContainers(ctx context.Context, in *runtimeapi.ListContainersRequest, _ ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error) {
	cs, err := c.f.ListContainers(ctx, in.Filter)
	return &runtimeapi.ListContainersResponse{Containers: cs}, err
}
func (c runtimeClient) ContainerStatus(ctx context.Context, in *runtimeapi.ContainerStatusRequest, _ ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error) {
	return c.f.ContainerStatus(ctx, in.ContainerId, in.Verbose)
}
func (c runtimeClient) UpdateContainerResources(ctx context.Context, in *runtimeapi.UpdateContainerResourcesRequest, _ ...grpc.CallOption) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	err := c.f.UpdateContainerResources(ctx, in.ContainerId, &runtimeapi.ContainerResources{Linux: in.Linux})
	if err == nil {
		c.r.mu.Lock()
		c.r.updates[in.ContainerId] = in.Linux
		c.r.mu.Unlock()
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, err
}
func (c runtimeClient) ReopenContainerLog(ctx context.Context, in *runtimeapi.ReopenContainerLogRequest, _ ...grpc.CallOption) (*runtimeapi.ReopenContainerLogResponse, error) {
	return &runtimeapi.ReopenContainerLogResponse{}, c.f.ReopenContainerLog(ctx, in.ContainerId)
}
func (c runtimeClient) ExecSync(ctx context.Context, in *runtimeapi.ExecSyncRequest, _ ...grpc.CallOption) (*runtimeapi.ExecSyncResponse, error) {
	out, errb, err := c.f.ExecSync(ctx, in.ContainerId, in.Cmd, time.Duration(in.Timeout)*time.Second)
	return &runtimeapi.ExecSyncResponse{Stdout: out, Stderr: errb}, err
}
func (c runtimeClient) Exec(ctx context.Context, in *runtimeapi.ExecRequest, _ ...grpc.CallOption) (*runtimeapi.ExecResponse, error) {
	return c.f.Exec(ctx, in)
}
func (c runtimeClient) Attach(ctx context.Context, in *runtimeapi.AttachRequest, _ ...grpc.CallOption) (*runtimeapi.AttachResponse, error) {
	return c.f.Attach(ctx, in)
}
func (c runtimeClient) PortForward(ctx context.Context, in *runtimeapi.PortForwardRequest, _ ...grpc.CallOption) (*runtimeapi.PortForwardResponse, error) {
	return c.f.PortForward(ctx, in)
}
func (c runtimeClient) ContainerStats(ctx context.Context, in *runtimeapi.ContainerStatsRequest, _ ...grpc.CallOption) (*runtimeapi.ContainerStatsResponse, error) {
	st, err := c.f.ContainerStats(ctx, in.ContainerId)
	return &runtimeapi.ContainerStatsResponse{Stats: st}, err
}
func (c runtimeClient) ListContainerStats(ctx context.Context, in *runtimeapi.ListContainerStatsRequest, _ ...grpc.CallOption) (*runtimeapi.ListContainerStatsResponse, error) {
	st, err := c.f.ListContainerStats(ctx, in.Filter)
	return &runtimeapi.ListContainerStatsResponse{Stats: st}, err
}
func (c runtimeClient) PodSandboxStats(ctx context.Context, in *runtimeapi.PodSandboxStatsRequest, _ ...grpc.CallOption) (*runtimeapi.PodSandboxStatsResponse, error) {
	st, err := c.f.PodSandboxStats(ctx, in.PodSandboxId)
	return &runtimeapi.PodSandboxStatsResponse{Stats: st}, err
}
func (c runtimeClient) ListPodSandboxStats(ctx context.Context, in *runtimeapi.ListPodSandboxStatsRequest, _ ...grpc.CallOption) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	st, err := c.f.ListPodSandboxStats(ctx, in.Filter)
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: st}, err
}
func (c runtimeClient) UpdateRuntimeConfig(ctx context.Context, in *runtimeapi.UpdateRuntimeConfigRequest, _ ...grpc.CallOption) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	return &runtimeapi.UpdateRuntimeConfigResponse{}, c.f.UpdateRuntimeConfig(ctx, in.RuntimeConfig)
}
func (c runtimeClient) Status(ctx context.Context, in *runtimeapi.StatusRequest, _ ...grpc.CallOption) (*runtimeapi.StatusResponse, error) {
	return c.f.Status(ctx, in.Verbose)
}
func (c runtimeClient) CheckpointContainer(ctx context.Context, in *runtimeapi.CheckpointContainerRequest, _ ...grpc.CallOption) (*runtimeapi.CheckpointContainerResponse, error) {
	return &runtimeapi.CheckpointContainerResponse{}, c.f.CheckpointContainer(ctx, in)
}
func (c runtimeClient) ListMetricDescriptors(ctx context.Context, _ *runtimeapi.ListMetricDescriptorsRequest, _ ...grpc.CallOption) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	d, err := c.f.ListMetricDescriptors(ctx)
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: d}, err
}
func (c runtimeClient) ListPodSandboxMetrics(ctx context.Context, _ *runtimeapi.ListPodSandboxMetricsRequest, _ ...grpc.CallOption) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	m, err := c.f.ListPodSandboxMetrics(ctx)
	return &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: m}, err
}
func (c runtimeClient) RuntimeConfig(ctx context.Context, _ *runtimeapi.RuntimeConfigRequest, _ ...grpc.CallOption) (*runtimeapi.RuntimeConfigResponse, error) {
	return c.f.RuntimeConfig(ctx)
}
func (c runtimeClient) UpdatePodSandboxResources(ctx context.Context, in *runtimeapi.UpdatePodSandboxResourcesRequest, _ ...grpc.CallOption) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	return c.f.UpdatePodSandboxResources(ctx, in)
}
func (c runtimeClient) CheckpointPod(ctx context.Context, in *runtimeapi.CheckpointPodRequest, _ ...grpc.CallOption) (*runtimeapi.CheckpointPodResponse, error) {
	return &runtimeapi.CheckpointPodResponse{}, c.f.CheckpointPod(ctx, in)
}
func (c runtimeClient) RestorePod(ctx context.Context, in *runtimeapi.RestorePodRequest, _ ...grpc.CallOption) (*runtimeapi.RestorePodResponse, error) {
	return c.f.RestorePod(ctx, in)
}

type imageClient struct {
	runtimeapi.ImageServiceClient
	f *fake.FakeImageService
}

var _ runtimeapi.ImageServiceClient = imageClient{}

func (c imageClient) ListImages(ctx context.Context, in *runtimeapi.ListImagesRequest, _ ...grpc.CallOption) (*runtimeapi.ListImagesResponse, error) {
	imgs, err := c.f.ListImages(ctx, in.Filter)
	return &runtimeapi.ListImagesResponse{Images: imgs}, err
}
func (c imageClient) ImageStatus(ctx context.Context, in *runtimeapi.ImageStatusRequest, _ ...grpc.CallOption) (*runtimeapi.ImageStatusResponse, error) {
	return c.f.ImageStatus(ctx, in.Image, in.Verbose)
}
func (c imageClient) PullImage(ctx context.Context, in *runtimeapi.PullImageRequest, _ ...grpc.CallOption) (*runtimeapi.PullImageResponse, error) {
	ref, err := c.f.PullImage(ctx, in.Image, in.Auth, in.SandboxConfig)
	return &runtimeapi.PullImageResponse{ImageRef: ref}, err
}
func (c imageClient) RemoveImage(ctx context.Context, in *runtimeapi.RemoveImageRequest, _ ...grpc.CallOption) (*runtimeapi.RemoveImageResponse, error) {
	return &runtimeapi.RemoveImageResponse{}, c.f.RemoveImage(ctx, in.Image)
}
func (c imageClient) ImageFsInfo(ctx context.Context, _ *runtimeapi.ImageFsInfoRequest, _ ...grpc.CallOption) (*runtimeapi.ImageFsInfoResponse, error) {
	return c.f.ImageFsInfo(ctx)
}
