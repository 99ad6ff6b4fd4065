// Command clusterctl is hack/cluster.sh's helper for what a shell does
// badly: container images built without a registry or image tools, a TCP
// forwarder from this machine's loopback into the cluster's network
// namespace (so kubectl here reaches an API server that has no route
// here), removal of every pod sandbox a node's runtime holds (so
// `down` leaves no pod network namespace or mount behind), and the
// conformance report from the e2e suite's junit files.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/test/images"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("clusterctl: ")
	if len(os.Args) < 2 {
		log.Fatal("usage: clusterctl image|forward|cri-clean|report [flags]")
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "image":
		err = image(args)
	case "forward":
		err = forward(args)
	case "cri-clean":
		err = criClean(args)
	case "report":
		err = report(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func image(args []string) error {
	fs := flag.NewFlagSet("image", flag.ExitOnError)
	out := fs.String("o", "", "OCI layout archive to write")
	ref := fs.String("ref", "", "image reference it is imported as")
	var entry, cmd, files, env list
	fs.Var(&entry, "entrypoint", "entrypoint argument (repeat)")
	fs.Var(&cmd, "cmd", "default command argument (repeat)")
	fs.Var(&files, "file", "DST=SRC: file SRC here at DST in the image (repeat)")
	fs.Var(&env, "env", "K=V (repeat)")
	var bins list
	fs.Var(&bins, "bin", "DST=SRC: program SRC here at DST in the image, with the shared libraries it loads (repeat)")
	user := fs.String("user", "", "the image's USER (uid or uid:gid)")
	_ = fs.Parse(args)
	if *out == "" || *ref == "" {
		return errors.New("image: -o and -ref are required")
	}
	spec := images.Spec{Entrypoint: entry, Cmd: cmd, Env: env, User: *user, Files: map[string]string{}, Binaries: map[string]string{}}
	for flagName, l := range map[string]list{"file": files, "bin": bins} {
		for _, f := range l {
			dst, src, ok := strings.Cut(f, "=")
			if !ok {
				return fmt.Errorf("image: -%s %q: want DST=SRC", flagName, f)
			}
			map[string]map[string]string{"file": spec.Files, "bin": spec.Binaries}[flagName][dst] = src
		}
	}
	img, err := images.Build(spec)
	if err != nil {
		return fmt.Errorf("image %s: %w", *ref, err)
	}
	return img.WriteLayout(*out, *ref)
}

// forward listens here and dials from inside another network namespace:
// one OS thread is moved into it and does every dial.
func forward(args []string) error {
	fs := flag.NewFlagSet("forward", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:16500", "address to listen on, in this namespace")
	nsPath := fs.String("netns", "", "network namespace to dial from (/run/netns/NAME)")
	to := fs.String("to", "", "address to dial there")
	_ = fs.Parse(args)
	if *nsPath == "" || *to == "" {
		return errors.New("forward: -netns and -to are required")
	}
	dials := make(chan chan net.Conn)
	errc := make(chan error, 1)
	go func() {
		// The thread never leaves the namespace: it ends with the process.
		runtime.LockOSThread()
		h, err := netns.GetFromPath(*nsPath)
		if err == nil {
			err = netns.Set(h)
		}
		errc <- err
		if err != nil {
			return
		}
		for reply := range dials {
			c, err := net.DialTimeout("tcp", *to, 5*time.Second)
			if err != nil {
				log.Printf("dial %s: %v", *to, err)
			}
			reply <- c
		}
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("forward: enter %s: %w", *nsPath, err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	for {
		in, err := ln.Accept()
		if err != nil {
			return err
		}
		reply := make(chan net.Conn)
		dials <- reply
		out := <-reply
		if out == nil {
			in.Close()
			continue
		}
		go pipe(in, out)
	}
}

func pipe(a, b net.Conn) {
	defer a.Close()
	defer b.Close()
	go func() { _, _ = io.Copy(b, a); b.(*net.TCPConn).CloseWrite() }()
	_, _ = io.Copy(a, b)
}

// criClean stops and removes every pod sandbox of a runtime: the runtime
// then unmounts and deletes their network namespaces itself.
func criClean(args []string) error {
	fs := flag.NewFlagSet("cri-clean", flag.ExitOnError)
	endpoint := fs.String("endpoint", "", "CRI endpoint (unix:///path)")
	_ = fs.Parse(args)
	conn, err := grpc.NewClient(*endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("cri-clean: %w", err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("cri-clean: list sandboxes: %w", err)
	}
	var errs []error
	for _, s := range l.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.Metadata.GetName(), err))
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", s.Metadata.GetName(), err))
		}
	}
	fmt.Printf("cri-clean: %d sandboxes removed\n", len(l.Items)-len(errs))
	return errors.Join(errs...)
}
