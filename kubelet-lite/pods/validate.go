package pods

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/hivelet/hivelet/kubelet-lite/volumes"
)

// validatePod checks what of a pod reaches the node's file system or the
// runtime as a name or a path, as the API server would: a pod from a
// static manifest never passed it, and one from the API server is
// checked again because the kubelet is root and trusts nothing it
// builds a host path from. The error names the field.
func validatePod(pod *corev1.Pod) error {
	var errs []error
	bad := func(field, value string, msgs []string) {
		if len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s %q: %s", field, value, strings.Join(msgs, "; ")))
		}
	}
	bad("metadata.name", pod.Name, validation.IsDNS1123Subdomain(pod.Name))
	bad("metadata.namespace", pod.Namespace, validation.IsDNS1123Label(pod.Namespace))
	bad("metadata.uid", string(pod.UID), uidProblems(string(pod.UID)))
	if len(pod.Spec.Containers) == 0 {
		errs = append(errs, errors.New("spec.containers: at least one container is required"))
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		errs = append(errs, fmt.Errorf("spec.terminationGracePeriodSeconds %d: must be non-negative", *g))
	}
	vols := map[string]bool{}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		field := fmt.Sprintf("spec.volumes[%d].name", i)
		bad(field, v.Name, validation.IsDNS1123Label(v.Name))
		if vols[v.Name] {
			errs = append(errs, fmt.Errorf("%s %q: duplicate", field, v.Name))
		}
		vols[v.Name] = true
		errs = append(errs, volumeProblems(fmt.Sprintf("spec.volumes[%d]", i), v)...)
	}
	names := map[string]bool{}
	check := func(kind string, cs []corev1.Container) {
		for i := range cs {
			c := &cs[i]
			field := fmt.Sprintf("spec.%s[%d]", kind, i)
			bad(field+".name", c.Name, validation.IsDNS1123Label(c.Name))
			if names[c.Name] {
				errs = append(errs, fmt.Errorf("%s.name %q: duplicate", field, c.Name))
			}
			names[c.Name] = true
			if strings.TrimSpace(c.Image) == "" {
				errs = append(errs, fmt.Errorf("%s.image: required", field))
			}
			for j, vm := range c.VolumeMounts {
				mf := fmt.Sprintf("%s.volumeMounts[%d]", field, j)
				if !vols[vm.Name] {
					errs = append(errs, fmt.Errorf("%s.name %q: no volume of that name", mf, vm.Name))
				}
				if vm.MountPath == "" {
					errs = append(errs, fmt.Errorf("%s.mountPath: required", mf))
				}
				if vm.SubPath != "" && vm.SubPathExpr != "" {
					errs = append(errs, fmt.Errorf("%s: subPath and subPathExpr are mutually exclusive", mf))
				}
				if err := volumes.CheckSubPath(vm.SubPath); err != nil {
					errs = append(errs, fmt.Errorf("%s.subPath: %w", mf, err))
				}
			}
			if sc := c.SecurityContext; sc != nil {
				if err := checkSeccompPath(sc.SeccompProfile); err != nil {
					errs = append(errs, fmt.Errorf("%s.securityContext.%w", field, err))
				}
			}
		}
	}
	check("initContainers", pod.Spec.InitContainers)
	check("containers", pod.Spec.Containers)
	check("ephemeralContainers", ephemeralContainers(pod))
	if sc := pod.Spec.SecurityContext; sc != nil {
		if err := checkSeccompPath(sc.SeccompProfile); err != nil {
			errs = append(errs, fmt.Errorf("spec.securityContext.%w", err))
		}
	}
	return errors.Join(errs...)
}

// uidProblems refuses a UID that is not one path element of letters,
// digits and dashes: it names directories on the node.
func uidProblems(uid string) []string {
	if uid == "" {
		return []string{"required"}
	}
	if len(uid) > 128 {
		return []string{"longer than 128 characters"}
	}
	for _, r := range uid {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return []string{"only letters, digits and '-' are allowed"}
		}
	}
	return nil
}

// volumeProblems checks the item paths a volume writes and a hostPath's
// path.
func volumeProblems(field string, v *corev1.Volume) []error {
	var errs []error
	items := func(f string, paths ...string) {
		for _, p := range paths {
			if err := volumes.CheckFilePath(p); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f, err))
			}
		}
	}
	keyPaths := func(ks []corev1.KeyToPath) []string {
		out := make([]string, len(ks))
		for i, k := range ks {
			out[i] = k.Path
		}
		return out
	}
	downPaths := func(ds []corev1.DownwardAPIVolumeFile) []string {
		out := make([]string, len(ds))
		for i, d := range ds {
			out[i] = d.Path
		}
		return out
	}
	switch {
	case v.HostPath != nil:
		p := v.HostPath.Path
		if !filepath.IsAbs(p) || volumes.CheckSubPath(strings.TrimPrefix(p, "/")) != nil {
			errs = append(errs, fmt.Errorf("%s.hostPath.path %q: must be absolute, without \"..\"", field, p))
		}
	case v.ConfigMap != nil:
		items(field+".configMap.items", keyPaths(v.ConfigMap.Items)...)
	case v.Secret != nil:
		items(field+".secret.items", keyPaths(v.Secret.Items)...)
	case v.DownwardAPI != nil:
		items(field+".downwardAPI.items", downPaths(v.DownwardAPI.Items)...)
	case v.Projected != nil:
		for _, s := range v.Projected.Sources {
			switch {
			case s.ConfigMap != nil:
				items(field+".projected.sources.configMap.items", keyPaths(s.ConfigMap.Items)...)
			case s.Secret != nil:
				items(field+".projected.sources.secret.items", keyPaths(s.Secret.Items)...)
			case s.DownwardAPI != nil:
				items(field+".projected.sources.downwardAPI.items", downPaths(s.DownwardAPI.Items)...)
			case s.ServiceAccountToken != nil:
				items(field+".projected.sources.serviceAccountToken.path", s.ServiceAccountToken.Path)
			}
		}
	}
	return errs
}
