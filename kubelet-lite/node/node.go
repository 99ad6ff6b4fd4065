// Package node keeps kubelet-lite's Node object: registration with the
// machine's addresses, capacity and labels; conditions measured on the
// machine (memory, disk, PIDs, runtime readiness) refreshed on a period;
// and the node Lease in kube-node-lease that marks the node alive.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
	"github.com/hivelet/hivelet/kubelet-lite/kubeapi"
)

// Lease timing, as the upstream kubelet's defaults.
const (
	LeaseDuration  = 40 * time.Second
	LeaseRenew     = 10 * time.Second
	StatusPeriod   = 10 * time.Second
	leaseNamespace = corev1.NamespaceNodeLease
	defaultMaxPods = 110
	kubeletVersion = "v1.37.2-hivelet"
)

// Config describes this node.
type Config struct {
	Name    string
	IPs     []netip.Addr // InternalIP addresses, first is primary
	RootDir string       // its filesystem decides DiskPressure
	PodCIDR string       // optional; a controller may set spec.podCIDR instead
	Labels  map[string]string
	MaxPods int
	// Reserved is kept back from pods in the allocatable the Node
	// reports; its hard eviction thresholds also set the pressure
	// conditions.
	Reserved Reserved
	// SoftEviction thresholds set the pressure conditions too.
	SoftEviction []eviction.Threshold
	// Pressure is the eviction manager's view of the pressure
	// conditions (seen every 250 ms, held for the transition period);
	// nil: the status update's own look only.
	Pressure func() []corev1.NodeConditionType
	// RuntimeReady reports whether the container runtime is usable.
	RuntimeReady func(context.Context) error
	// RuntimeVersion is "name://version" of the runtime, for nodeInfo.
	RuntimeVersion func(context.Context) (string, error)
	// Extended are the device plugins' resources, added to capacity and
	// allocatable; nil: none.
	Extended func() (capacity, allocatable corev1.ResourceList)
	// Images lists the runtime's images for status.images.
	Images func(context.Context) ([]corev1.ContainerImage, error)
}

// Keeper registers the Node and keeps its status and Lease fresh.
type Keeper struct {
	cfg    Config
	client *kubeapi.Client
	log    *slog.Logger
	last   atomic.Pointer[corev1.Node] // as the last status update left it
}

// Node is the Node as the last status update (every StatusPeriod) left
// it; nil before the first. Admission reads its labels and taints.
func (k *Keeper) Node() *corev1.Node { return k.last.Load() }

// New returns a Keeper.
func New(client *kubeapi.Client, cfg Config, log *slog.Logger) *Keeper {
	cfg.MaxPods = MaxPods(cfg.MaxPods)
	return &Keeper{cfg: cfg, client: client, log: log}
}

// Register creates the Node, or adopts an existing one (a restart, or a
// node re-joining) keeping what others set on it.
func (k *Keeper) Register(ctx context.Context) error {
	want := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k.cfg.Name, Labels: k.labels()}}
	if k.cfg.PodCIDR != "" {
		want.Spec.PodCIDR, want.Spec.PodCIDRs = k.cfg.PodCIDR, []string{k.cfg.PodCIDR}
	}
	_, err := k.client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := k.client.CoreV1().Nodes().Get(ctx, k.cfg.Name, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("register node %s: %w", k.cfg.Name, gerr)
		}
		changed := false
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		for key, v := range k.labels() {
			if cur.Labels[key] != v {
				cur.Labels[key], changed = v, true
			}
		}
		if changed {
			_, err = k.client.CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{})
		} else {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("register node %s: %w", k.cfg.Name, err)
	}
	return k.updateStatus(ctx)
}

func (k *Keeper) labels() map[string]string {
	l := map[string]string{
		corev1.LabelHostname:   k.cfg.Name,
		corev1.LabelOSStable:   runtime.GOOS,
		corev1.LabelArchStable: runtime.GOARCH,
	}
	for key, v := range k.cfg.Labels {
		l[key] = v
	}
	return l
}

// Run renews the Lease and refreshes the status until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	lease := time.NewTicker(LeaseRenew)
	status := time.NewTicker(StatusPeriod)
	defer lease.Stop()
	defer status.Stop()
	k.renewLease(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-lease.C:
			k.renewLease(ctx)
		case <-status.C:
			if err := k.updateStatus(ctx); err != nil {
				k.log.Warn("Node status update failed; retrying", "error", err)
			}
		}
	}
}

func (k *Keeper) renewLease(ctx context.Context) {
	if err := k.renewLeaseOnce(ctx); err != nil {
		k.log.Warn("Node lease renewal failed; retrying", "error", err)
	}
}

func (k *Keeper) renewLeaseOnce(ctx context.Context) error {
	leases := k.client.CoordinationV1().Leases(leaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	cur, err := leases.Get(ctx, k.cfg.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, nerr := k.client.CoreV1().Nodes().Get(ctx, k.cfg.Name, metav1.GetOptions{})
		if nerr != nil {
			return fmt.Errorf("renew lease: %w", nerr)
		}
		l := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: k.cfg.Name, Namespace: leaseNamespace,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(k.cfg.Name),
				LeaseDurationSeconds: ptr.To(int32(LeaseDuration / time.Second)), RenewTime: &now},
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	cur.Spec.RenewTime = &now
	cur.Spec.HolderIdentity = ptr.To(k.cfg.Name)
	cur.Spec.LeaseDurationSeconds = ptr.To(int32(LeaseDuration / time.Second))
	_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// updateStatus writes addresses, capacity and conditions.
func (k *Keeper) updateStatus(ctx context.Context) error {
	node, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read node %s: %w", k.cfg.Name, err)
	}
	m := Measure(k.cfg.RootDir)
	node.Status.Capacity, node.Status.Allocatable = m.Resources(k.cfg.Reserved, k.cfg.MaxPods)
	if k.cfg.Extended != nil {
		c, a := k.cfg.Extended()
		maps.Copy(node.Status.Capacity, c)
		maps.Copy(node.Status.Allocatable, a)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: k.cfg.Name}}
	for _, ip := range k.cfg.IPs {
		node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip.String()})
	}
	node.Status.NodeInfo.KubeletVersion = kubeletVersion
	node.Status.NodeInfo.OperatingSystem = runtime.GOOS
	node.Status.NodeInfo.Architecture = runtime.GOARCH
	k.fillNodeInfo(ctx, &node.Status.NodeInfo)
	if k.cfg.Images != nil {
		// A runtime that cannot list them leaves the last list: the
		// scheduler's image scores should not flap with it.
		if imgs, err := k.cfg.Images(ctx); err == nil {
			node.Status.Images = imgs
		}
	}
	var rtErr error
	if k.cfg.RuntimeReady != nil {
		rtErr = k.cfg.RuntimeReady(ctx)
	}
	now := metav1.Now()
	node.Status.Conditions = mergeConditions(node.Status.Conditions, withPressure(m.Conditions(rtErr, append(slices.Clone(k.cfg.Reserved.Hard), k.cfg.SoftEviction...)), k.cfg.Pressure), now)
	updated, err := k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update node %s status: %w", k.cfg.Name, err)
	}
	k.last.Store(updated)
	return nil
}

// mergeConditions keeps each condition's transition time while its status
// holds, as the API expects.
func mergeConditions(old, cur []corev1.NodeCondition, now metav1.Time) []corev1.NodeCondition {
	out := make([]corev1.NodeCondition, 0, len(cur))
	for _, c := range cur {
		c.LastHeartbeatTime = now
		c.LastTransitionTime = now
		for _, o := range old {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		out = append(out, c)
	}
	return out
}

// ErrNotReady wraps why the node is not ready.
var ErrNotReady = errors.New("node not ready")
