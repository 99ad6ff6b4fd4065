package k8sbench

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Creating a Service through kube-apiserver 1.37 costs O(N) at N Services
// (its ClusterIP allocator counts every allocated address on each
// allocation), so 100k of them take hours here. Beyond bulkLoadOver
// missing Services, the bench writes them straight into etcd, as the API
// server stores them (protobuf, under /registry), with the IPAddress
// object that reserves each ClusterIP, and restarts the API server, which
// reads etcd into its watch cache at start. Every proxy then lists and
// watches them through the API server as usual.
const bulkLoadOver = 5000

var storageCodec = func() runtime.Encoder {
	s := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(s))
	utilruntime.Must(discoveryv1.AddToScheme(s))
	utilruntime.Must(networkingv1.AddToScheme(s))
	return protobuf.NewSerializer(s, s)
}()

// storedObjects are the etcd keys and values of service i in ns, with
// ClusterIP ip: the Service, its EndpointSlice and the IPAddress.
func storedObjects(ns string, i int, ip netip.Addr) (map[string][]byte, error) {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	meta := func(name, namespace string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: namespace, UID: uuid.NewUUID(), CreationTimestamp: now}
	}
	name := fmt.Sprintf("svc-%06d", i)
	svc := &corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}, ObjectMeta: meta(name, ns),
		Spec: corev1.ServiceSpec{
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)}},
			ClusterIP: ip.String(), ClusterIPs: []string{ip.String()}, Type: corev1.ServiceTypeClusterIP,
			SessionAffinity: corev1.ServiceAffinityNone, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack), InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
		}}
	eps := slice(ns, i, 0)
	eps.TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"}
	eps.ObjectMeta = meta(eps.Name, ns)
	eps.Labels = map[string]string{discoveryv1.LabelServiceName: name}
	addr := &networkingv1.IPAddress{TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "IPAddress"},
		ObjectMeta: meta(ip.String(), ""),
		Spec:       networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Group: "", Resource: "services", Namespace: ns, Name: name}}}
	addr.Labels = map[string]string{"ipaddress.kubernetes.io/ip-family": "IPv4", "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"}
	out := map[string][]byte{}
	for key, obj := range map[string]runtime.Object{
		"/registry/services/specs/" + ns + "/" + name:     svc,
		"/registry/endpointslices/" + ns + "/" + eps.Name: eps,
		"/registry/ipaddresses/" + ip.String():            addr,
	} {
		var buf bytes.Buffer
		if err := storageCodec.Encode(obj, &buf); err != nil {
			return nil, fmt.Errorf("encode %s: %w", key, err)
		}
		out[key] = buf.Bytes()
	}
	return out, nil
}

// freeClusterIPs returns n addresses of the Service range (10.96.0.0/12)
// that no Service in the cluster has.
func freeClusterIPs(b *testing.B, client kubernetes.Interface, n int) []netip.Addr {
	used := map[netip.Addr]bool{}
	opts := metav1.ListOptions{Limit: 5000}
	for {
		l, err := client.CoreV1().Services("").List(context.Background(), opts)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range l.Items {
			if a, err := netip.ParseAddr(s.Spec.ClusterIP); err == nil {
				used[a] = true
			}
		}
		if opts.Continue = l.Continue; opts.Continue == "" {
			break
		}
	}
	var out []netip.Addr
	// From 10.100.0.0 on, clear of the range's first addresses (the
	// kubernetes Service and what tests create).
	for a := netip.MustParseAddr("10.100.0.0"); len(out) < n; a = a.Next() {
		if !netip.MustParsePrefix("10.96.0.0/12").Contains(a) {
			b.Fatalf("Service range exhausted after %d free addresses", len(out))
		}
		if !used[a] {
			out = append(out, a)
		}
	}
	return out
}

// bulkLoad writes services idx of ns into etcd at etcdURL, never
// overwriting a key that exists. The API server must be restarted to see
// them.
func bulkLoad(b *testing.B, client kubernetes.Interface, etcdURL, ns string, idx []int) {
	ips := freeClusterIPs(b, client, len(idx))
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for k := range work {
				objs, err := storedObjects(ns, idx[k], ips[k])
				if err == nil {
					var ops []clientv3.Op
					var conds []clientv3.Cmp
					for key, val := range objs {
						conds = append(conds, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
						ops = append(ops, clientv3.OpPut(key, string(val)))
					}
					_, err = cli.Txn(context.Background()).If(conds...).Then(ops...).Commit()
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for k := range idx {
		work <- k
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatalf("bulk load into etcd: %v", err)
	default:
	}
	b.Logf("wrote %d Services, EndpointSlices and IPAddresses into etcd in %v", len(idx), time.Since(start).Round(time.Second))
}
