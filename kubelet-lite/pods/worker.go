package pods

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/metrics"
)

// Crash-loop back-off, as the upstream kubelet: the first restart is
// immediate, then 10 s doubling up to 5 min; a container that ran for 10
// minutes starts over.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 300 * time.Second
	backoffReset   = 10 * time.Minute
	resyncPeriod   = 10 * time.Second
)

type backoff struct {
	delay time.Duration
}

// grow moves to the next delay: 10 s, doubling, at most 5 min.
func (b *backoff) grow() time.Duration {
	b.delay = min(max(2*b.delay, backoffInitial), backoffMax)
	return b.delay
}

// waiting is why a container is not running, for its status.
type waiting struct{ reason, message string }

type worker struct {
	m     *Manager
	uid   types.UID
	kickc chan struct{}

	mu        sync.Mutex
	pod       *corev1.Pod       // guarded by mu
	removed   bool              // guarded by mu
	removedAt time.Time         // guarded by mu: when removed was set
	published *corev1.PodStatus // guarded by mu: lastStatus, for the kubelet API
	settled   bool              // guarded by mu: published was computed with every readiness known
	// computedSettled is settled for the status being computed; owned by
	// the worker goroutine.
	computedSettled bool
	// admitted: the pod passed admission (its hostPorts are held).
	admitted atomic.Bool

	// Owned by the worker goroutine.
	backoff    map[string]*backoff
	pulls      map[string]*pullBackoff // by container name
	waiting    map[string]waiting
	reported   map[string]bool // waiting reasons already told as events
	startTime  metav1.Time
	lastStatus *corev1.PodStatus
	// resources are the CPU and memory applied to running instances, by
	// container ID (resize.go); pruned with the instances.
	resources map[string]corev1.ResourceRequirements
	// deleting: the pod was deleted and its containers stopped, so its
	// status is terminal whatever its restart policy.
	deleting bool
	deadline *time.Timer   // wakes the worker at activeDeadlineSeconds
	evicting *evictRequest // guarded by mu: the eviction manager's request
	tornDown bool          // a finished pod's emptyDirs and CSI volumes are gone
	seen     time.Time     // when this kubelet first saw the pod
	ranOnce  bool          // the pod was Running once: its start time is recorded
}

func newWorker(m *Manager, pod *corev1.Pod) *worker {
	w := &worker{m: m, uid: pod.UID, kickc: make(chan struct{}, 1), pod: pod,
		backoff: map[string]*backoff{}, pulls: map[string]*pullBackoff{}, waiting: map[string]waiting{}, reported: map[string]bool{}, resources: map[string]corev1.ResourceRequirements{}, startTime: metav1.Now(),
		seen: time.Now(), ranOnce: pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending}
	// A restarted kubelet adopts the pod as the API server last saw it:
	// its start time, and a finished pod stays finished.
	if pod.Status.StartTime != nil {
		w.startTime = *pod.Status.StartTime
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		st := pod.Status
		w.lastStatus, w.published = &st, st.DeepCopy()
	}
	return w
}

func (w *worker) kick() {
	select {
	case w.kickc <- struct{}{}:
	default:
	}
}

func (w *worker) update(pod *corev1.Pod) {
	w.mu.Lock()
	w.pod = pod
	w.mu.Unlock()
	w.kick()
}

func (w *worker) remove() {
	w.mu.Lock()
	if !w.removed {
		w.removed, w.removedAt = true, time.Now()
	}
	w.mu.Unlock()
	// Listeners drop the pod's endpoints before its containers are told
	// to stop.
	w.m.changed()
	w.kick()
}

func (w *worker) run() {
	t := time.NewTicker(resyncPeriod)
	defer t.Stop()
	for {
		began := time.Now()
		gone := w.safeSync(context.Background())
		metrics.PodWorker.Since(began, "sync")
		if gone {
			w.m.forget(w.uid)
			return
		}
		select {
		case <-w.kickc:
		case <-t.C:
		}
	}
}

func gracePeriod(pod *corev1.Pod) int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

func secondsDur(s int64) time.Duration { return time.Duration(s) * time.Second }

// IsStatic reports a pod read from the manifests directory.
func IsStatic(pod *corev1.Pod) bool { return pod.Annotations[AnnotationSource] == "file" }

// sync brings the runtime to the pod once; true when the pod is gone.
func (w *worker) sync(ctx context.Context) bool {
	w.mu.Lock()
	pod, removed := w.pod, w.removed
	w.mu.Unlock()
	if removed || pod.DeletionTimestamp != nil {
		if rp, err := w.m.runtimePod(ctx, w.uid); err == nil {
			w.m.probes.stopPod(w.uid, rp)
			if !removed && w.m.client != nil {
				w.finalStatus(ctx, pod, rp)
			}
		}
		w.m.removeRuntimePod(ctx, w.uid, gracePeriod(pod), pod)
		if !w.m.cleanupPodFiles(ctx, string(w.uid)) {
			return false // the deletion is confirmed once its volumes are down
		}
		w.m.removePodCgroups(pod)
		w.m.deleteMirror(pod)
		if !removed && w.m.client != nil && !IsStatic(pod) {
			// The kubelet confirms the deletion once the containers are gone.
			err := w.m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
				GracePeriodSeconds: ptr.To(int64(0)), Preconditions: &metav1.Preconditions{UID: &pod.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				w.m.log.Warn("Confirming a pod's deletion failed; retrying", "pod", pod.Namespace+"/"+pod.Name, "error", err)
				return false
			}
		}
		w.m.log.Info("Pod terminated", "pod", pod.Namespace+"/"+pod.Name)
		return true
	}
	if w.terminal() && w.lastStatus.Reason != "" {
		// Failed by the kubelet itself (rejected, past its deadline): the
		// status says why and stays as written.
		return false
	}
	rp, err := w.m.runtimePod(ctx, w.uid)
	if err != nil {
		w.m.log.Warn("Container runtime unavailable; retrying", "pod", pod.Namespace+"/"+pod.Name, "error", err)
		return false
	}
	if !w.terminal() {
		// Names and paths are checked on every sync, whatever runs
		// already (a spec the kubelet builds host paths from is never
		// trusted); the rest of admission only before the pod starts.
		reason, err := reasonInvalidPod, validatePod(pod)
		if err == nil && len(rp.sandboxes) == 0 {
			reason, err = w.m.admitWorker(w, pod)
		} else if err == nil {
			w.admitted.Store(true) // running already (a restarted kubelet adopts it)
		}
		if err != nil {
			w.reject(ctx, pod, reason, err)
			w.m.stopInOrder(ctx, pod, rp, gracePeriod(pod))
			return false
		}
	}
	if ev := w.takeEviction(); ev != nil {
		w.evict(ctx, pod, ev)
		return false
	}
	if w.deadlinePassed(pod) {
		w.failDeadline(ctx, pod)
		return false
	}
	if !w.terminal() {
		w.converge(ctx, pod, rp)
		w.reportWaiting(pod)
		if rp, err = w.m.runtimePod(ctx, w.uid); err != nil {
			return false
		}
		w.m.pruneDead(ctx, rp)
	}
	var ips []string
	if sb := rp.readySandbox(); sb != nil {
		ips = w.m.podIPs(ctx, pod, sb.Id)
		w.m.probes.sync(w, pod, rp, firstOr(ips))
	}
	st := w.status(pod, rp, ips)
	if st.Phase == corev1.PodRunning && !w.ranOnce {
		w.ranOnce = true
		metrics.PodStart.Since(w.seen)
	}
	w.writeStatus(ctx, pod, st)
	if w.terminal() {
		// The main containers are done: sidecars stop too, last first,
		// and the pod's scratch space goes.
		w.m.stopInOrder(ctx, pod, rp, gracePeriod(pod))
		if !w.tornDown {
			w.tornDown = w.m.teardownFinished(ctx, pod)
		}
	}
	return false
}

// finalStatus stops a deleted pod's containers (in order, within its
// grace period) and writes its last status, terminal as upstream's is:
// controllers that hold a finalizer on the pod (the Job controller) let
// it go only once its phase is Succeeded or Failed.
func (w *worker) finalStatus(ctx context.Context, pod *corev1.Pod, rp *runtimePod) {
	w.m.stopInOrder(ctx, pod, rp, gracePeriod(pod))
	rp, err := w.m.runtimePod(ctx, w.uid)
	if err != nil {
		return
	}
	var ips []string
	if w.lastStatus != nil {
		for _, ip := range w.lastStatus.PodIPs {
			ips = append(ips, ip.IP)
		}
	}
	w.deleting = true
	w.writeStatus(ctx, pod, w.status(pod, rp, ips))
}

// terminal reports a pod that finished for good (Succeeded or Failed):
// nothing is restarted any more.
func (w *worker) terminal() bool {
	return w.lastStatus != nil && (w.lastStatus.Phase == corev1.PodSucceeded || w.lastStatus.Phase == corev1.PodFailed)
}

// converge makes one round of progress: sandbox, then init containers in
// order, then every container.
func (w *worker) converge(ctx context.Context, pod *corev1.Pod, rp *runtimePod) {
	sb := rp.readySandbox()
	if sb == nil {
		if len(rp.sandboxes) > 0 {
			// The sandbox died: like the kubelet, start the pod over.
			w.m.removeRuntimePod(ctx, w.uid, 0, pod)
		}
		id, err := w.runSandbox(ctx, pod, uint32(len(rp.sandboxes)))
		if err != nil {
			w.m.log.Warn("Creating a pod sandbox failed; retrying", "pod", pod.Namespace+"/"+pod.Name, "error", err)
			for _, c := range pod.Spec.Containers {
				w.waiting[c.Name] = waiting{"ContainerCreating", err.Error()}
			}
			return
		}
		sb = &runtimeapi.PodSandbox{Id: id}
	}
	sbCfg, err := w.m.SandboxConfig(pod, sb.GetMetadata().GetAttempt())
	if err != nil {
		for _, c := range allContainers(pod) {
			w.waiting[c.Name] = waiting{"CreateContainerConfigError", err.Error()}
		}
		return
	}
	podIPs := w.m.podIPs(ctx, pod, sb.Id)
	vols, err := w.m.setupVolumes(ctx, pod)
	if err != nil {
		// As upstream: the pod stays ContainerCreating, and the reason is
		// a FailedMount event (once per distinct failure).
		w.m.log.Warn("Pod volumes not ready; retrying", "pod", pod.Namespace+"/"+pod.Name, "error", err)
		msg := err.Error()
		if key := "\x00FailedMount\x00" + msg; !w.reported[key] {
			w.reported[key] = true
			w.m.event(pod, corev1.EventTypeWarning, "FailedMount", "MountVolume.SetUp failed for "+msg)
		}
		for _, c := range allContainers(pod) {
			w.waiting[c.Name] = waiting{"ContainerCreating", msg}
			w.reported[c.Name+"\x00ContainerCreating\x00"+msg] = true
		}
		time.AfterFunc(backoffInitial, w.kick)
		return
	}
	initialized := mainStarted(pod, rp, sb.Id)
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cur, _ := rp.latest(c.Name, sb.Id)
		if isSidecar(c) {
			// Kept running for the pod's life; during init, the next
			// container waits until it has started (its startup probe
			// passed, if it has one).
			w.ensure(ctx, pod, c, cur, sb.Id, sbCfg, podIPs, vols)
			if !initialized && !w.m.probes.isStarted(c, cur) {
				if _, failing := w.waiting[c.Name]; !failing && (cur == nil || cur.State != runtimeapi.ContainerState_CONTAINER_RUNNING) {
					w.kick() // just started: look again at once
				}
				return
			}
			continue
		}
		if initialized || cur != nil && cur.State == runtimeapi.ContainerState_CONTAINER_EXITED && cur.ExitCode == 0 {
			continue
		}
		w.ensure(ctx, pod, c, cur, sb.Id, sbCfg, podIPs, vols)
		return // the next init container waits for this one
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cur, _ := rp.latest(c.Name, sb.Id)
		w.ensure(ctx, pod, c, cur, sb.Id, sbCfg, podIPs, vols)
	}
	w.startEphemeral(ctx, pod, rp, sb.Id, sbCfg, podIPs, vols)
}

// ensure starts, restarts (policy and back-off permitting) or leaves
// alone one container.
func (w *worker) ensure(ctx context.Context, pod *corev1.Pod, c *corev1.Container, cur *runtimeapi.ContainerStatus,
	sb string, sbCfg *runtimeapi.PodSandboxConfig, podIPs []string, vols map[string]podVolume) {
	switch {
	case cur == nil:
		w.start(ctx, pod, c, 0, sb, sbCfg, podIPs, vols)
	case cur.State == runtimeapi.ContainerState_CONTAINER_RUNNING && specChanged(c, cur):
		// The pod was updated (a new image): like the kubelet, replace
		// the container whatever the restart policy.
		w.m.log.Info("Container spec changed; restarting it", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name)
		w.m.event(pod, corev1.EventTypeNormal, "Killing", fmt.Sprintf("container %s definition changed, will be restarted", c.Name))
		w.m.stopContainer(ctx, pod, cur, gracePeriod(pod))
		w.start(ctx, pod, c, cur.Metadata.Attempt+1, sb, sbCfg, podIPs, vols)
	case cur.State == runtimeapi.ContainerState_CONTAINER_RUNNING && w.resize(ctx, pod, c, cur):
		// Its resizePolicy asks for a restart to take the new resources.
		w.m.log.Info("Container resized; restarting it as its resizePolicy asks", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name)
		w.m.event(pod, corev1.EventTypeNormal, "Killing", fmt.Sprintf("container %s resized, will be restarted", c.Name))
		w.m.stopContainer(ctx, pod, cur, gracePeriod(pod))
		delete(w.resources, cur.Id)
		w.start(ctx, pod, c, cur.Metadata.Attempt+1, sb, sbCfg, podIPs, vols)
	case cur.State == runtimeapi.ContainerState_CONTAINER_CREATED:
		cctx, cancel := cri.Ctx(ctx)
		defer cancel()
		if _, err := w.m.rt.Runtime.StartContainer(cctx, &runtimeapi.StartContainerRequest{ContainerId: cur.Id}); err != nil {
			w.waiting[c.Name] = waiting{"RunContainerError", err.Error()}
		}
	case cur.State == runtimeapi.ContainerState_CONTAINER_EXITED:
		if !shouldRestart(restartPolicyOf(pod, c), cur.ExitCode) {
			return
		}
		bo := w.backoff[c.Name]
		if bo == nil {
			bo = &backoff{}
			w.backoff[c.Name] = bo
		}
		finished := time.Unix(0, cur.FinishedAt)
		// Only a container that ran long enough earns a fresh start; one
		// that never started (StartError) backs off like a crash.
		if cur.StartedAt > 0 && time.Unix(0, cur.StartedAt).Add(backoffReset).Before(finished) {
			bo.delay = 0
		}
		if wait := time.Until(finished.Add(bo.delay)); bo.delay > 0 && wait > 0 {
			w.waiting[c.Name] = waiting{"CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", bo.delay, c.Name, pod.Name)}
			time.AfterFunc(wait, w.kick)
			return
		}
		bo.grow()
		w.start(ctx, pod, c, cur.Metadata.Attempt+1, sb, sbCfg, podIPs, vols)
	}
}

// specChanged reports whether the running instance cur was created from
// another spec than c (resources aside); instances without a hash (not
// created by a kubelet) are left alone.
func specChanged(c *corev1.Container, cur *runtimeapi.ContainerStatus) bool {
	if h := cur.Annotations[annotationHashNoResources]; h != "" {
		return h != specHash(c)
	}
	h := cur.Annotations[annotationHash]
	return h != "" && h != fullSpecHash(c)
}

func shouldRestart(policy corev1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// podIPs are the pod's addresses: the sandbox's, or the node's for a pod
// on the node's network (as the upstream kubelet reports them).
func (m *Manager) podIPs(ctx context.Context, pod *corev1.Pod, sb string) []string {
	if pod.Spec.HostNetwork {
		ips := make([]string, len(m.cfg.NodeIPs))
		for i, ip := range m.cfg.NodeIPs {
			ips[i] = ip.String()
		}
		return ips
	}
	return m.sandboxIPs(ctx, sb)
}

func firstOr(ips []string) string {
	if len(ips) == 0 {
		return ""
	}
	return ips[0]
}

func (m *Manager) sandboxIPs(ctx context.Context, sb string) []string {
	ctx, cancel := cri.Ctx(ctx)
	defer cancel()
	st, err := m.rt.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil || st.Status.GetNetwork().GetIp() == "" {
		return nil
	}
	ips := []string{st.Status.Network.Ip}
	for _, ip := range st.Status.Network.AdditionalIps {
		ips = append(ips, ip.Ip)
	}
	return ips
}

func (w *worker) runSandbox(ctx context.Context, pod *corev1.Pod, attempt uint32) (string, error) {
	cfg, err := w.m.SandboxConfig(pod, attempt)
	if err != nil {
		return "", err
	}
	if _, warn := w.m.podDNS(pod); warn != "" && !w.reported["MissingClusterDNS"] {
		w.reported["MissingClusterDNS"] = true
		w.m.event(pod, corev1.EventTypeWarning, "MissingClusterDNS", "pod: "+warn)
	}
	if err := w.m.applyPodCgroup(pod); err != nil {
		// The containers keep their own limits; a host whose cgroups
		// refuse the pod's (controllers not delegated here) still runs it.
		w.m.log.Warn("Setting the pod's cgroup limits failed; its containers keep their own", "pod", pod.Namespace+"/"+pod.Name, "error", err)
	}
	ctx, cancel := cri.Ctx(ctx)
	defer cancel()
	metrics.StartedPods.Inc()
	resp, err := w.m.rt.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		metrics.StartedPodsErrors.Inc()
		return "", fmt.Errorf("run pod sandbox: %w", err)
	}
	return resp.PodSandboxId, nil
}

// start pulls the image as the pull policy says, then creates and starts
// the container; a failure is kept as the container's waiting reason.
func (w *worker) start(ctx context.Context, pod *corev1.Pod, c *corev1.Container, attempt uint32, sb string,
	sbCfg *runtimeapi.PodSandboxConfig, podIPs []string, vols map[string]podVolume, adjust ...func(*runtimeapi.ContainerConfig)) {
	if !w.imageReady(ctx, pod, c) {
		return
	}
	if err := w.m.checkImageUser(ctx, pod, c); err != nil {
		w.waiting[c.Name] = waiting{"CreateContainerConfigError", err.Error()}
		return
	}
	cfg, err := w.m.ContainerConfig(ctx, pod, c, attempt, podIPs, vols)
	if err != nil {
		w.waiting[c.Name] = waiting{"CreateContainerConfigError", err.Error()}
		return
	}
	for _, f := range adjust {
		f(cfg)
	}
	cctx, cancel := cri.Ctx(ctx)
	defer cancel()
	created, err := w.m.rt.Runtime.CreateContainer(cctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: cfg, SandboxConfig: sbCfg})
	if err != nil {
		w.waiting[c.Name] = waiting{"CreateContainerError", err.Error()}
		return
	}
	w.m.event(pod, corev1.EventTypeNormal, "Created", "Created container: "+c.Name)
	kind := containerType(pod, c.Name)
	metrics.StartedContainers.Inc(kind)
	if _, err := w.m.rt.Runtime.StartContainer(cctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		metrics.StartedContainersErrors.Inc(kind, status.Code(err).String())
		w.waiting[c.Name] = waiting{"RunContainerError", err.Error()}
		return
	}
	w.m.event(pod, corev1.EventTypeNormal, "Started", "Started container "+c.Name)
	if err := w.postStart(ctx, pod, c, created.ContainerId); err != nil {
		w.waiting[c.Name] = waiting{"PostStartHookError", err.Error()}
		return
	}
	delete(w.waiting, c.Name)
}

// pullBackoff spaces the pulls of an image that failed, as the upstream
// kubelet does: 10 s doubling up to 5 min, per container and image.
type pullBackoff struct {
	backoff
	image   string
	until   time.Time
	lastErr string
}

// imageReady makes sure c's image is there, as its pull policy says,
// unless a failed pull is still backing off. A failure is kept as the
// container's waiting reason: ErrImagePull when a pull failed,
// ImagePullBackOff while the next one waits.
func (w *worker) imageReady(ctx context.Context, pod *corev1.Pod, c *corev1.Container) bool {
	bo := w.pulls[c.Name]
	if bo != nil && bo.image != c.Image {
		delete(w.pulls, c.Name)
		bo = nil
	}
	if bo != nil && time.Now().Before(bo.until) {
		w.waiting[c.Name] = waiting{"ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q: %s", c.Image, bo.lastErr)}
		return false
	}
	reason, err := w.m.ensureImage(ctx, pod, c)
	if err == nil {
		delete(w.pulls, c.Name)
		return true
	}
	w.waiting[c.Name] = waiting{reason, err.Error()}
	w.m.log.Warn("Image not available", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "error", err)
	if reason == "ErrImageNeverPull" || reason == "InvalidImageName" {
		// Nothing was pulled: look again later, no back-off to show.
		time.AfterFunc(backoffInitial, w.kick)
		return false
	}
	if bo == nil {
		bo = &pullBackoff{image: c.Image}
		w.pulls[c.Name] = bo
	}
	bo.grow()
	bo.until, bo.lastErr = time.Now().Add(bo.delay), err.Error()
	time.AfterFunc(bo.delay, w.kick)
	return false
}

// pullPolicy defaults as the API server does for pods it stores.
func pullPolicy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	ref := c.Image
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		ref = ref[i+1:]
	}
	if !strings.Contains(ref, ":") || strings.HasSuffix(ref, ":latest") {
		if !strings.Contains(c.Image, "@") {
			return corev1.PullAlways
		}
	}
	return corev1.PullIfNotPresent
}

// ensureImage returns the waiting reason and error when the image cannot
// be had.
func (m *Manager) ensureImage(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (string, error) {
	if err := checkImageRef(c.Image); err != nil {
		return "InvalidImageName", err
	}
	ctx, cancel := context.WithTimeout(ctx, cri.PullTimeout)
	defer cancel()
	spec := &runtimeapi.ImageSpec{Image: c.Image}
	st, err := m.rt.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec})
	if err != nil {
		return "ErrImagePull", fmt.Errorf("image status %s: %w", c.Image, err)
	}
	present := st.Image != nil
	switch pullPolicy(c) {
	case corev1.PullNever:
		if !present {
			return "ErrImageNeverPull", fmt.Errorf("image %s is not present and imagePullPolicy is Never", c.Image)
		}
		m.event(pod, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
		return "", nil
	case corev1.PullIfNotPresent:
		if present {
			m.event(pod, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
			return "", nil
		}
	}
	auths, err := m.pullAuths(ctx, pod, c.Image)
	if err != nil {
		return "ErrImagePull", err
	}
	var lastErr error
	m.event(pod, corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.Image))
	began := time.Now()
	for _, auth := range auths {
		if _, lastErr = m.rt.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec, Auth: auth}); lastErr == nil {
			m.event(pod, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in %s", c.Image, time.Since(began).Round(time.Millisecond)))
			return "", nil
		}
	}
	// Even when a copy is present: Always means the registry is asked
	// with the pod's credentials, so a pod that may not pull the image
	// does not run it from another pod's pull (as upstream).
	return "ErrImagePull", fmt.Errorf("pull %s: %w", c.Image, lastErr)
}
