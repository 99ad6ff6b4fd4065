package k8s

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// storeEvents records what a handlerStore hands on, as "prev>cur" with
// each side name@resourceVersion or "-" for none.
type storeEvents []string

func (e *storeEvents) on(prev, cur any) {
	side := func(o any) string {
		if o == nil {
			return "-"
		}
		s := o.(*cachedService)
		return s.Name + "@" + s.ResourceVersion
	}
	*e = append(*e, side(prev)+">"+side(cur))
}

func svcRV(name, rv string, port int32) *corev1.Service {
	s := service(name, port)
	s.ResourceVersion = rv
	return s
}

func TestHandlerStore(t *testing.T) {
	var ev storeEvents
	st := newHandlerStore(ev.on)
	expect := func(step string, want ...string) {
		t.Helper()
		got := ev
		ev = nil
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: handed on %q, want %q", step, got, want)
		}
	}
	select {
	case <-st.synced:
		t.Fatal("synced before the first list")
	default:
	}

	// The first list: every object is an add; the list's items come
	// converted already (cachedList), raw ones are converted here.
	listed, _ := toCached(svcRV("a", "1", 80))
	if err := st.Replace([]any{listed, svcRV("b", "1", 80)}, "1"); err != nil {
		t.Fatal(err)
	}
	expect("first list", "->a@1", "->b@1")
	select {
	case <-st.synced:
	default:
		t.Fatal("not synced after the first list")
	}

	// Watch events: the previous version is the stored one.
	_ = st.Update(svcRV("a", "2", 81))
	_ = st.Add(svcRV("c", "3", 80))
	expect("watch", "a@1>a@2", "->c@3")
	if s := st.objs["shop/a"].(*cachedService); s.model.Ports[0].Port != 81 {
		t.Errorf("stored a has port %d, want 81", s.model.Ports[0].Port)
	}

	// A delete hands on what was stored (the model last handed on), not
	// the final state the watch carries; an unknown one is dropped.
	_ = st.Delete(svcRV("c", "4", 9))
	_ = st.Delete(svcRV("nobody", "4", 9))
	expect("delete", "c@3>-")

	// A relist after a broken watch: unchanged objects are not handed on
	// again, changed ones are updates, missing ones deletes, new ones adds.
	if err := st.Replace([]any{svcRV("a", "2", 81), svcRV("b", "5", 82), svcRV("d", "5", 80)}, "5"); err != nil {
		t.Fatal(err)
	}
	expect("relist", "b@1>b@5", "->d@5")
	if err := st.Replace([]any{svcRV("d", "5", 80)}, "6"); err != nil {
		t.Fatal(err)
	}
	expect("relist with deletions", "a@2>-", "b@5>-")
	if n := st.len(); n != 1 {
		t.Errorf("store holds %d objects, want 1", n)
	}

	// Objects of no known type are ignored, not handed on.
	_ = st.Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}})
	expect("foreign type")
}

// BenchmarkInitialHandoff is an initial list of 10k converted Services,
// from the list's return until the handler has been handed all of them:
// through a reflector into handlerStore (what the source runs) and
// through a shared informer (the baseline it replaced).
func BenchmarkInitialHandoff(b *testing.B) {
	items := make([]runtime.Object, 10_000)
	for i := range items {
		o, _ := toCached(svcRV(fmt.Sprintf("svc-%d", i), "1", 80))
		items[i] = o.(runtime.Object)
	}
	lw := func() cache.ListerWatcher {
		return listWatch(func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			l := &cachedList{Items: slices.Clone(items)}
			l.ResourceVersion = "1"
			return l, nil
		}, func(context.Context, metav1.ListOptions) (watch.Interface, error) { return watch.NewFake(), nil })
	}
	var handed atomic.Int64
	on := func(_, _ any) { handed.Add(1) }
	b.Run("store", func(b *testing.B) {
		for b.Loop() {
			ctx, cancel := context.WithCancel(context.Background())
			<-follow(ctx, "bench", lw(), &corev1.Service{}, on)
			cancel()
		}
	})
	b.Run("informer", func(b *testing.B) {
		for b.Loop() {
			ctx, cancel := context.WithCancel(context.Background())
			inf := cache.NewSharedIndexInformer(lw(), &corev1.Service{}, 0, cache.Indexers{})
			reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o any) { on(nil, o) }})
			if err != nil {
				b.Fatal(err)
			}
			go inf.RunWithContext(ctx)
			cache.WaitFor(ctx, "", reg.HasSyncedChecker())
			cancel()
		}
	})
	if handed.Load() == 0 {
		b.Fatal("nothing handed on")
	}
}
