package pods

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// Annotations of static pods, the upstream kubelet's names.
const (
	AnnotationSource = "kubernetes.io/config.source"
	AnnotationHash   = "kubernetes.io/config.hash"
	staticSource     = "file"
)

// StaticPeriod is how often the manifests directory is re-read.
const StaticPeriod = 5 * time.Second

// RunStatic runs the pods of the YAML/JSON manifests in dir until ctx
// ends, re-reading it every StaticPeriod: a new or changed file starts
// (or replaces) its pod, a removed one stops it. Static pods run without
// an API server. A file that does not parse is reported and skipped; a
// pod whose file turns unreadable keeps running.
func (m *Manager) RunStatic(ctx context.Context, dir string) {
	m.Sources(staticSource)
	current := map[types.UID]bool{}
	for {
		pods, errs := readStatic(dir, m.cfg.NodeName)
		for _, err := range errs {
			m.log.Warn("Static pod manifest rejected", "error", err)
		}
		next := map[types.UID]bool{}
		for _, p := range pods {
			next[p.UID] = true
			m.Update(p)
			m.syncMirror(ctx, p)
		}
		for uid := range current {
			if !next[uid] && len(errs) == 0 {
				m.Remove(uid)
			} else if !next[uid] {
				next[uid] = true // an unreadable file keeps its pod
			}
		}
		current = next
		m.SourceReady(staticSource)
		select {
		case <-ctx.Done():
			return
		case <-time.After(StaticPeriod):
		}
	}
}

// readStatic parses every manifest: the pod's name gets the node's name
// appended and its UID is a hash of its content, as the kubelet does, so
// an edited file is a new pod.
func readStatic(dir, node string) ([]*corev1.Pod, []error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("read %s: %w", dir, err)}
	}
	var pods []*corev1.Pod
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".json")) {
			continue
		}
		path := filepath.Join(dir, name)
		raw, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		var pod corev1.Pod
		if err := yaml.UnmarshalStrict(bytes.TrimSpace(raw), &pod); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if pod.Kind != "" && pod.Kind != "Pod" || pod.Name == "" || len(pod.Spec.Containers) == 0 {
			errs = append(errs, fmt.Errorf("%s: want a Pod with metadata.name and at least one container", path))
			continue
		}
		sum := sha256.Sum256(append([]byte(node+"\n"), raw...))
		hash := hex.EncodeToString(sum[:16])
		if pod.Namespace == "" {
			pod.Namespace = "default"
		}
		pod.Name = pod.Name + "-" + node
		pod.UID = types.UID(hash)
		pod.Spec.NodeName = node
		if pod.Spec.RestartPolicy == "" {
			pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
		}
		defaultContainers(pod.Spec.InitContainers)
		defaultContainers(pod.Spec.Containers)
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[AnnotationSource] = staticSource
		pod.Annotations[AnnotationHash] = hash
		if err := validatePod(&pod); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		pods = append(pods, &pod)
	}
	return pods, errs
}

// defaultContainers fills in what the API server would for a pod it
// stores: static pods never pass through it.
func defaultContainers(cs []corev1.Container) {
	for i := range cs {
		if cs[i].TerminationMessagePath == "" {
			cs[i].TerminationMessagePath = corev1.TerminationMessagePathDefault
		}
		if cs[i].TerminationMessagePolicy == "" {
			cs[i].TerminationMessagePolicy = corev1.TerminationMessageReadFile
		}
	}
}
