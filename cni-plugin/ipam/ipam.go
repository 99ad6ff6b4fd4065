// Package ipam hands out pod addresses from the network's ranges with the
// reference host-local allocator and its on-disk store (a file per
// address, a lock file per network), in process: no second binary to
// exec per pod, and the same durable, lock-protected records host-local
// keeps, so existing tools that read /var/lib/cni/networks still work.
package ipam

import (
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/disk"

	"github.com/hivelet/hivelet/cni-plugin/config"
)

// Allocate reserves one address per range set for the attachment (id,
// ifname), honouring addresses requested through CNI_ARGS, runtimeConfig
// or args. All or nothing: on error, nothing stays reserved.
func Allocate(c *config.Conf, id, ifname string) (ips []*current.IPConfig, err error) {
	store, err := open(c)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	defer func() {
		if err != nil {
			_ = release(store, id, ifname)
		}
	}()
	requested := map[string]net.IP{}
	for _, ip := range c.IPAM.IPArgs {
		requested[ip.String()] = ip
	}
	for i := range c.IPAM.Ranges {
		rs := &c.IPAM.Ranges[i]
		var want net.IP
		for k, ip := range requested {
			if rs.Contains(ip) {
				want = ip
				delete(requested, k)
				break
			}
		}
		ipc, err := allocator.NewIPAllocator(rs, store, i).Get(id, ifname, want)
		if err != nil {
			return nil, allocError(rs, err)
		}
		ips = append(ips, ipc)
	}
	if len(requested) > 0 {
		var left []string
		for k := range requested {
			left = append(left, k)
		}
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("requested address(es) %s are in none of the pod ranges", strings.Join(left, ", ")), "")
	}
	return ips, nil
}

func allocError(rs *allocator.RangeSet, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "no IP addresses available"):
		return types.NewError(config.ErrPoolExhausted,
			fmt.Sprintf("pod range %s has no free address", subnets(rs)),
			"every address is held by a pod on this node: delete pods, or give the node a larger pod CIDR")
	case strings.Contains(msg, "duplicate allocation"):
		return types.NewError(config.ErrNameClash, "address already allocated to this attachment: "+msg,
			"the runtime called ADD twice without DEL; DEL the attachment first")
	}
	return types.NewError(types.ErrIOFailure, "allocate address: "+msg, "")
}

// Release frees the attachment's addresses; releasing nothing is fine.
func Release(c *config.Conf, id, ifname string) error {
	store, err := open(c)
	if err != nil {
		return err
	}
	defer store.Close()
	return release(store, id, ifname)
}

func release(store *disk.Store, id, ifname string) error {
	if err := store.Lock(); err != nil {
		return fmt.Errorf("lock address store: %w", err)
	}
	defer store.Unlock()
	if err := store.ReleaseByID(id, ifname); err != nil {
		return types.NewError(types.ErrIOFailure, "release addresses: "+err.Error(), "")
	}
	return nil
}

// Held returns the addresses the attachment holds.
func Held(c *config.Conf, id, ifname string) ([]net.IP, error) {
	store, err := open(c)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	if err := store.Lock(); err != nil {
		return nil, fmt.Errorf("lock address store: %w", err)
	}
	defer store.Unlock()
	return store.GetByID(id, ifname), nil
}

// GC frees every address held by an attachment not in valid. An empty
// valid list means none is valid.
func GC(c *config.Conf, valid []types.GCAttachment) error {
	store, err := open(c)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.GC(valid); err != nil {
		return types.NewError(types.ErrIOFailure, "collect stale addresses: "+err.Error(), "")
	}
	return nil
}

func open(c *config.Conf) (*disk.Store, error) {
	store, err := disk.New(c.IPAM.Name, c.IPAM.DataDir)
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, fmt.Sprintf("open address store in %s: %v", c.IPAM.DataDir, err),
			"the data dir must be writable by the runtime (root)")
	}
	return store, nil
}

// Ready checks that the address store can be opened and locked.
func Ready(c *config.Conf) error {
	store, err := open(c)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Lock(); err != nil {
		return fmt.Errorf("lock address store: %w", err)
	}
	return store.Unlock()
}

func subnets(rs *allocator.RangeSet) string {
	var out []string
	for _, r := range *rs {
		out = append(out, (&net.IPNet{IP: r.Subnet.IP, Mask: r.Subnet.Mask}).String())
	}
	return strings.Join(out, ",")
}
