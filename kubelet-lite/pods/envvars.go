package pods

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// envList is an environment in the order variables were first set; a
// later value replaces an earlier one in place.
type envList struct {
	order []string
	vals  map[string]string
}

func (l *envList) set(k, v string) {
	if l.vals == nil {
		l.vals = map[string]string{}
	}
	if _, ok := l.vals[k]; !ok {
		l.order = append(l.order, k)
	}
	l.vals[k] = v
}

// resolveEnv computes the container's environment as the upstream
// kubelet does: envFrom sources first (prefixed; since
// RelaxedEnvironmentVariableValidation went GA any printable name
// without "=" is a variable, "1-data" included),
// then env, whose $(VAR) references see what came before and the
// Service variables; Service variables the container did not set come
// last.
func (m *Manager) resolveEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, podIPs []string) ([]*runtimeapi.KeyValue, error) {
	svc, err := m.serviceEnv(ctx, pod)
	if err != nil {
		return nil, err
	}
	var env envList
	for _, src := range c.EnvFrom {
		data, err := m.envFromData(ctx, pod.Namespace, src)
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if name := src.Prefix + k; len(validation.IsRelaxedEnvVarName(name)) == 0 {
				env.set(name, data[k])
			}
		}
	}
	lookup := func(name string) (string, bool) {
		if v, ok := env.vals[name]; ok {
			return v, true
		}
		v, ok := svc.vals[name]
		return v, ok
	}
	for _, e := range c.Env {
		v := expandWith(e.Value, lookup)
		if src := e.ValueFrom; src != nil {
			if v, err = m.envSource(ctx, pod, c, src, podIPs); err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		}
		env.set(e.Name, v)
	}
	for _, k := range svc.order {
		if _, ok := env.vals[k]; !ok {
			env.set(k, svc.vals[k])
		}
	}
	out := make([]*runtimeapi.KeyValue, len(env.order))
	for i, k := range env.order {
		out[i] = &runtimeapi.KeyValue{Key: k, Value: []byte(env.vals[k])}
	}
	return out, nil
}

// envSource is one valueFrom.
func (m *Manager) envSource(ctx context.Context, pod *corev1.Pod, c *corev1.Container, src *corev1.EnvVarSource, podIPs []string) (string, error) {
	switch {
	case src.FieldRef != nil:
		return m.fieldValue(pod, src.FieldRef.FieldPath, podIPs)
	case src.ConfigMapKeyRef != nil:
		return m.configMapKey(ctx, pod.Namespace, src.ConfigMapKeyRef)
	case src.SecretKeyRef != nil:
		return m.secretKey(ctx, pod.Namespace, src.SecretKeyRef)
	case src.ResourceFieldRef != nil:
		if ref := src.ResourceFieldRef; ref.ContainerName != "" && ref.ContainerName != c.Name {
			return resourceFor(pod, ref, m.cfg.Allocatable)
		}
		return resourceValue(c, src.ResourceFieldRef, m.cfg.Allocatable)
	}
	return "", nil
}

// envFromData reads an envFrom source whole; an optional one that is
// missing reads as empty.
func (m *Manager) envFromData(ctx context.Context, ns string, src corev1.EnvFromSource) (map[string]string, error) {
	if m.client == nil {
		return nil, fmt.Errorf("envFrom needs an API server")
	}
	switch {
	case src.ConfigMapRef != nil:
		cm, err := m.client.CoreV1().ConfigMaps(ns).Get(ctx, src.ConfigMapRef.Name, metav1.GetOptions{})
		if err != nil {
			if src.ConfigMapRef.Optional != nil && *src.ConfigMapRef.Optional {
				return nil, nil
			}
			return nil, fmt.Errorf("envFrom configmap %s/%s: %w", ns, src.ConfigMapRef.Name, err)
		}
		return cm.Data, nil
	case src.SecretRef != nil:
		s, err := m.client.CoreV1().Secrets(ns).Get(ctx, src.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			if src.SecretRef.Optional != nil && *src.SecretRef.Optional {
				return nil, nil
			}
			return nil, fmt.Errorf("envFrom secret %s/%s: %w", ns, src.SecretRef.Name, err)
		}
		out := make(map[string]string, len(s.Data))
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out, nil
	}
	return nil, nil
}

// serviceEnv is the Service environment of a pod: the variables of every
// Service with a cluster IP in its namespace (unless enableServiceLinks
// is false) and, always, of the kubernetes Service in default. Only
// with an API server; listed at container start.
func (m *Manager) serviceEnv(ctx context.Context, pod *corev1.Pod) (envList, error) {
	var env envList
	if m.client == nil {
		return env, nil
	}
	byName := map[string]*corev1.Service{}
	if k, err := m.client.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
		byName[k.Name] = k
	}
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		var list corev1.ServiceList
		if err := m.client.CoreV1().Services(pod.Namespace).List(ctx, metav1.ListOptions{}, &list); err != nil {
			return env, fmt.Errorf("list services for the environment: %w", err)
		}
		for i := range list.Items {
			byName[list.Items[i].Name] = &list.Items[i]
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		serviceVars(&env, byName[n])
	}
	return env, nil
}

// serviceVars adds a Service's variables, the docker-link style names
// Kubernetes has always given them.
func serviceVars(env *envList, s *corev1.Service) {
	ip := s.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone {
		return
	}
	prefix := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
	env.set(prefix+"_SERVICE_HOST", ip)
	if len(s.Spec.Ports) == 0 {
		return
	}
	env.set(prefix+"_SERVICE_PORT", strconv.Itoa(int(s.Spec.Ports[0].Port)))
	for _, p := range s.Spec.Ports {
		if p.Name != "" {
			env.set(prefix+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")), strconv.Itoa(int(p.Port)))
		}
	}
	for i, p := range s.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		url := strings.ToLower(proto) + "://" + net.JoinHostPort(ip, strconv.Itoa(int(p.Port)))
		if i == 0 {
			env.set(prefix+"_PORT", url)
		}
		pp := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.Port, strings.ToUpper(proto))
		env.set(pp, url)
		env.set(pp+"_PROTO", strings.ToLower(proto))
		env.set(pp+"_PORT", strconv.Itoa(int(p.Port)))
		env.set(pp+"_ADDR", ip)
	}
}
