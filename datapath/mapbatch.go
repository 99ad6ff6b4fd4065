package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// batchChunk bounds one batch syscall; large enough to amortise the
// syscall, small enough that a failing chunk is cheap to retry.
const batchChunk = 8192

// ErrMapFull is wrapped by Apply errors caused by a map at its size limit.
var ErrMapFull = errors.New("BPF map full")

// putAll writes keys[i] = vals[i], in order, with batch syscalls where the
// kernel has them.
func putAll[K, V any](m *ebpf.Map, keys []K, vals []V) error {
	for start := 0; start < len(keys); start += batchChunk {
		end := min(start+batchChunk, len(keys))
		_, err := m.BatchUpdate(keys[start:end], vals[start:end], nil)
		if errors.Is(err, ebpf.ErrNotSupported) {
			for i := start; i < end; i++ {
				if err := m.Put(&keys[i], &vals[i]); err != nil {
					return fmt.Errorf("update %s: %w", mapName(m), err)
				}
			}
			continue
		}
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("update %s: %w: %w (raise the agent's --bpf-lb-*-max flags)", mapName(m), ErrMapFull, err)
		}
		if err != nil {
			return fmt.Errorf("update %s: %w", mapName(m), err)
		}
	}
	return nil
}

// deleteAll removes keys, in order; keys that are already gone are skipped.
func deleteAll[K any](m *ebpf.Map, keys []K) error {
	for len(keys) > 0 {
		chunk := keys[:min(batchChunk, len(keys))]
		n, err := m.BatchDelete(chunk, nil)
		switch {
		case err == nil:
			keys = keys[len(chunk):]
		case errors.Is(err, ebpf.ErrKeyNotExist):
			// The kernel stops at the first missing key; skip it.
			keys = keys[n+1:]
		case errors.Is(err, ebpf.ErrNotSupported):
			for i := range chunk {
				if err := m.Delete(&chunk[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
					return fmt.Errorf("delete from %s: %w", mapName(m), err)
				}
			}
			keys = keys[len(chunk):]
		default:
			return fmt.Errorf("delete from %s: %w", mapName(m), err)
		}
	}
	return nil
}

// pauseEvery calls pause after every batchChunk entries of work (the
// caller paces there); with a nil
// pause it does nothing.
type pauseEvery struct {
	pause func()
	n     int
}

func (p *pauseEvery) tick(n int) {
	if p == nil || p.pause == nil {
		return
	}
	if p.n += n; p.n >= batchChunk {
		p.n = 0
		p.pause()
	}
}

// dumpAll reads every entry of a hash map, ticking p per chunk read.
func dumpAll[K, V any](m *ebpf.Map, p *pauseEvery) ([]K, []V, error) {
	var (
		allK   []K
		allV   []V
		cursor ebpf.MapBatchCursor
		keys   = make([]K, batchChunk)
		vals   = make([]V, batchChunk)
	)
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		allK = append(allK, keys[:n]...)
		allV = append(allV, vals[:n]...)
		p.tick(n)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return allK, allV, nil
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			return dumpByIteration[K, V](m)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("dump %s: %w", mapName(m), err)
		}
	}
}

func dumpByIteration[K, V any](m *ebpf.Map) ([]K, []V, error) {
	var (
		allK []K
		allV []V
		k    K
		v    V
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		allK = append(allK, k)
		allV = append(allV, v)
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("dump %s: %w", mapName(m), err)
	}
	return allK, allV, nil
}

func mapName(m *ebpf.Map) string {
	if info, err := m.Info(); err == nil && info.Name != "" {
		return info.Name
	}
	return m.String()
}
