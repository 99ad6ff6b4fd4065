package datapath

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Pin name prefixes of TCX links: node devices and pod veths.
const (
	devicePinPrefix = "tcx_"
	podPinPrefix    = "tcxpod_"
)

// tcxPin is where the TCX link of a program on device ifname is pinned.
// The device name is part of the pin so an agent restart finds its links.
func tcxPin(bpffs, prefix, ifname string, ingress bool) string {
	dir := "egress"
	if ingress {
		dir = "ingress"
	}
	return filepath.Join(linksDir(bpffs), prefix+ifname+"_"+dir)
}

// AttachDevice attaches the NodePort/ExternalIP/LoadBalancer programs to
// TCX ingress and egress of device ifname in the calling thread's network
// namespace, pinning the links. A link pinned by an earlier run on the
// same device is updated in place: packets never pass untranslated.
func (d *Datapath) AttachDevice(ifname string) error {
	if err := d.loadTC(); err != nil {
		return err
	}
	return d.attachPair(devicePinPrefix, ifname, d.host.HlHostIngress, d.host.HlHostEgress)
}

// AttachPod attaches the per-packet ClusterIP programs to the host end of
// a pod's veth (for --socket-lb-host-only), pinning the links.
func (d *Datapath) AttachPod(ifname string) error {
	if err := d.loadTC(); err != nil {
		return err
	}
	return d.attachPair(podPinPrefix, ifname, d.pod.HlPodOut, d.pod.HlPodIn)
}

func (d *Datapath) attachPair(prefix, ifname string, ingress, egress *ebpf.Program) error {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("attach to device %s: %w (check --devices)", ifname, err)
	}
	if err := os.MkdirAll(linksDir(d.cfg.BPFFSDir), 0o755); err != nil {
		return fmt.Errorf("create links dir: %w", err)
	}
	for _, in := range []bool{true, false} {
		prog, at := egress, ebpf.AttachTCXEgress
		if in {
			prog, at = ingress, ebpf.AttachTCXIngress
		}
		if err := attachTCX(tcxPin(d.cfg.BPFFSDir, prefix, ifname, in), ifc.Index, at, prog); err != nil {
			return fmt.Errorf("attach to device %s: %w", ifname, err)
		}
	}
	return nil
}

func attachTCX(pin string, ifindex int, at ebpf.AttachType, prog *ebpf.Program) error {
	old, err := link.LoadPinnedLink(pin, nil)
	switch {
	case err == nil:
		defer old.Close()
		info, ierr := old.Info()
		if ierr == nil && info.TCX() != nil && int(info.TCX().Ifindex) == ifindex {
			if err := old.Update(prog); err != nil {
				return fmt.Errorf("update link %s: %w", pin, err)
			}
			return nil
		}
		// The device was re-created: the old link is dead or elsewhere.
		if err := old.Unpin(); err != nil {
			return fmt.Errorf("unpin stale link %s: %w", pin, err)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("open pinned link %s: %w (remove it with `hivelet agent --cleanup`)", pin, err)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at})
	if err != nil {
		return fmt.Errorf("attach TCX: %w", err)
	}
	defer l.Close()
	if err := l.Pin(pin); err != nil {
		return fmt.Errorf("pin link %s: %w", pin, err)
	}
	return nil
}

// DetachDevice removes hivelet's programs from a device; no error when
// none are attached.
func DetachDevice(bpffs, ifname string) error { return detachPair(bpffs, devicePinPrefix, ifname) }

// DetachPod removes the pod programs' pinned links of a veth (its links
// die with the veth; the pins would stay).
func DetachPod(bpffs, ifname string) error { return detachPair(bpffs, podPinPrefix, ifname) }

func detachPair(bpffs, prefix, ifname string) error {
	var errs []error
	for _, ingress := range []bool{true, false} {
		errs = append(errs, unpinLink(tcxPin(bpffs, prefix, ifname, ingress)))
	}
	return errors.Join(errs...)
}

// AttachedDevices lists the node devices with pinned TCX links.
func AttachedDevices(bpffs string) ([]string, error) { return attached(bpffs, devicePinPrefix) }

// AttachedPods lists the pod veths with pinned TCX links.
func AttachedPods(bpffs string) ([]string, error) { return attached(bpffs, podPinPrefix) }

func attached(bpffs, prefix string) ([]string, error) {
	ents, err := os.ReadDir(linksDir(bpffs))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []string
	for _, e := range ents {
		if name, ok := strings.CutPrefix(e.Name(), prefix); ok {
			if dev, ok := strings.CutSuffix(name, "_ingress"); ok {
				out = append(out, dev)
			}
		}
	}
	return out, nil
}

func unpinLink(pin string) error {
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open link %s: %w", pin, err)
	}
	return errors.Join(l.Unpin(), l.Close())
}
