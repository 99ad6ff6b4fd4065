package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/hivelet/hivelet/datapath/pins"
)

// sockHook is one cgroup attach point of the socket LB.
type sockHook struct {
	name   string
	attach ebpf.AttachType
	prog   func(*sockPrograms) *ebpf.Program
}

var sockHooks = []sockHook{
	{"connect4", ebpf.AttachCGroupInet4Connect, func(p *sockPrograms) *ebpf.Program { return p.HlSock4Connect }},
	{"sendmsg4", ebpf.AttachCGroupUDP4Sendmsg, func(p *sockPrograms) *ebpf.Program { return p.HlSock4Sendmsg }},
	{"recvmsg4", ebpf.AttachCGroupUDP4Recvmsg, func(p *sockPrograms) *ebpf.Program { return p.HlSock4Recvmsg }},
	{"getpeername4", ebpf.AttachCgroupInet4GetPeername, func(p *sockPrograms) *ebpf.Program { return p.HlSock4Getpeername }},
	{"connect6", ebpf.AttachCGroupInet6Connect, func(p *sockPrograms) *ebpf.Program { return p.HlSock6Connect }},
	{"sendmsg6", ebpf.AttachCGroupUDP6Sendmsg, func(p *sockPrograms) *ebpf.Program { return p.HlSock6Sendmsg }},
	{"recvmsg6", ebpf.AttachCGroupUDP6Recvmsg, func(p *sockPrograms) *ebpf.Program { return p.HlSock6Recvmsg }},
	{"getpeername6", ebpf.AttachCgroupInet6GetPeername, func(p *sockPrograms) *ebpf.Program { return p.HlSock6Getpeername }},
}

func linksDir(bpffs string) string { return pins.LinksDir(bpffs) }

func linkPin(bpffs, hook string) string { return pins.CgroupLink(bpffs, hook) }

// AttachCgroup attaches every socket hook to the cgroup v2 directory at
// path and pins the links. A link pinned by an earlier run is updated in
// place to the new program, so sockets never see a moment without
// translation; a link pinned for another cgroup is replaced.
func (d *Datapath) AttachCgroup(path string) error {
	id, err := cgroupID(path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(linksDir(d.cfg.BPFFSDir), 0o755); err != nil {
		return fmt.Errorf("create links dir: %w", err)
	}
	for _, h := range sockHooks {
		if err := attachHook(d.cfg.BPFFSDir, path, id, h, h.prog(&d.objs.sockPrograms)); err != nil {
			return err
		}
	}
	return nil
}

func attachHook(bpffs, cgroup string, cgID uint64, h sockHook, prog *ebpf.Program) error {
	pin := linkPin(bpffs, h.name)
	old, err := link.LoadPinnedLink(pin, nil)
	switch {
	case err == nil:
		info, ierr := old.Info()
		if ierr == nil && info.Cgroup() != nil && info.Cgroup().CgroupId == cgID {
			defer old.Close()
			if err := old.Update(prog); err != nil {
				return fmt.Errorf("update %s link at %s: %w", h.name, pin, err)
			}
			return nil
		}
	case errors.Is(err, os.ErrNotExist):
		old = nil
	default:
		return fmt.Errorf("open pinned %s link %s: %w (remove it with `hivelet agent --cleanup`)", h.name, pin, err)
	}

	l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: h.attach, Program: prog})
	if err != nil {
		return fmt.Errorf("attach %s to cgroup %s: %w", h.name, cgroup, err)
	}
	defer l.Close()
	if old != nil {
		// Attached elsewhere before: the new link is live, now drop the old one.
		err := errors.Join(old.Unpin(), old.Close())
		if err != nil {
			return fmt.Errorf("replace %s link: %w", h.name, err)
		}
	}
	if err := l.Pin(pin); err != nil {
		return fmt.Errorf("pin %s link at %s: %w", h.name, pin, err)
	}
	return nil
}

// Cleanup detaches every link and removes every map hivelet pinned under
// bpffs, then the directory itself. It is safe to run when nothing is
// there. Open sockets keep the backend they already connected to.
func Cleanup(bpffs string) error {
	var errs []error
	for _, h := range sockHooks {
		errs = append(errs, unpinLink(linkPin(bpffs, h.name)))
	}
	devs, err := AttachedDevices(bpffs)
	errs = append(errs, err)
	for _, dev := range devs {
		errs = append(errs, DetachDevice(bpffs, dev))
	}
	pods, err := AttachedPods(bpffs)
	errs = append(errs, err)
	for _, dev := range pods {
		errs = append(errs, DetachPod(bpffs, dev))
	}
	spec, err := loadSock()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for name := range spec.Maps {
		if err := os.Remove(filepath.Join(bpffs, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove map pin: %w", err))
		}
	}
	if err := os.Remove(linksDir(bpffs)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove %s: %w (it holds pins hivelet did not create)", linksDir(bpffs), err))
	}
	errs = append(errs, unmountOwnBPFFS(bpffs))
	if err := os.Remove(bpffs); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove %s: %w (it holds pins hivelet did not create)", bpffs, err))
	}
	return errors.Join(errs...)
}
