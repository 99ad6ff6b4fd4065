package k8s

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/hivelet/hivelet/daemon/noderoutes"
)

// cachedNode keeps what pod routing needs of a Node.
type cachedNode struct {
	ident
	node noderoutes.Node
}

func (*cachedNode) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }
func (c *cachedNode) DeepCopyObject() runtime.Object { cp := *c; return &cp }

func toCachedNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	c := &cachedNode{ident: identOf(&n.ObjectMeta), node: noderoutes.Node{Name: n.Name}}
	for _, s := range n.Spec.PodCIDRs {
		if p, err := netip.ParsePrefix(s); err == nil {
			c.node.PodCIDRs = append(c.node.PodCIDRs, p)
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			c.node.InternalIPs = append(c.node.InternalIPs, ip.Unmap())
		}
	}
	return c, nil
}

// Nodes watches every Node for pod routing. Get returns the current set;
// changed is called (with no work done) after every change.
type Nodes struct {
	inf cache.SharedIndexInformer
}

// WatchNodes starts an informer on all Nodes and returns once it has
// listed them.
func WatchNodes(ctx context.Context, client kubernetes.Interface, changed func()) (*Nodes, error) {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(toCachedNode))
	inf := f.Core().V1().Nodes().Informer()
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed() },
		UpdateFunc: func(any, any) { changed() },
		DeleteFunc: func(any) { changed() },
	}
	if _, err := inf.AddEventHandler(h); err != nil {
		return nil, fmt.Errorf("watch Nodes: %w", err)
	}
	f.Start(ctx.Done())
	if !cache.WaitFor(ctx, "", inf.HasSyncedChecker()) {
		return nil, ctx.Err()
	}
	return &Nodes{inf: inf}, nil
}

// Get returns every Node the informer holds.
func (n *Nodes) Get() []noderoutes.Node {
	var out []noderoutes.Node
	for _, obj := range n.inf.GetStore().List() {
		if c, ok := obj.(*cachedNode); ok {
			out = append(out, c.node)
		}
	}
	return out
}
