package pods

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestValidatePod(t *testing.T) {
	good := func() *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "0b6f-11"}, Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Containers: []corev1.Container{{Name: "main", Image: "busybox",
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data", SubPath: "a/b"}}}}}}
	}
	if err := validatePod(good()); err != nil {
		t.Fatalf("a good pod: %v", err)
	}
	for want, mutate := range map[string]func(*corev1.Pod){
		"metadata.name":      func(p *corev1.Pod) { p.Name = "../../etc" },
		"metadata.namespace": func(p *corev1.Pod) { p.Namespace = "a/b" },
		"metadata.uid":       func(p *corev1.Pod) { p.UID = ".." },
		"spec.volumes[0].name": func(p *corev1.Pod) {
			p.Spec.Volumes[0].Name = "../x"
			p.Spec.Containers[0].VolumeMounts[0].Name = "../x"
		},
		"spec.containers[0].name":                    func(p *corev1.Pod) { p.Spec.Containers[0].Name = "a/../../b" },
		"spec.containers[0].volumeMounts[0].subPath": func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].SubPath = "../../.." },
		"no volume of that name":                     func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].Name = "other" },
		"duplicate": func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "main", Image: "busybox"}}
		},
		"spec.volumes[1].downwardAPI.items": func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
				Items: []corev1.DownwardAPIVolumeFile{{Path: "../../../../etc/cron.d/x", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}})
		},
		"spec.volumes[1].hostPath.path": func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "relative/../x"}}})
		},
		"seccompProfile.localhostProfile": func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("../../etc/x")}}
		},
		"terminationGracePeriodSeconds": func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To(int64(-5)) },
		"mutually exclusive": func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts[0].SubPathExpr = "$(POD)"
		},
	} {
		p := good()
		mutate(p)
		err := validatePod(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}
