package loadbalancer

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ConvertSelector reduces a Service's selector and target ports for
// selecting local pods; (nil, nil) when the Service selects nothing. ports
// are the Service's converted ports, in spec order.
func ConvertSelector(in *corev1.Service, ports []ServicePort) (*Selector, field.ErrorList) {
	if len(in.Spec.Selector) == 0 {
		return nil, nil
	}
	var errs field.ErrorList
	spec := field.NewPath("spec")
	for k, v := range in.Spec.Selector {
		path := spec.Child("selector").Key(k)
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(path, k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(path, v, msg))
		}
	}
	if len(ports) != len(in.Spec.Ports) {
		return nil, append(errs, field.InternalError(spec.Child("ports"), fmt.Errorf("%d ports converted of %d", len(ports), len(in.Spec.Ports))))
	}
	out := &Selector{Labels: in.Spec.Selector, Ports: make([]TargetPort, len(ports))}
	for i, p := range in.Spec.Ports {
		path := spec.Child("ports").Index(i).Child("targetPort")
		tp := TargetPort{Name: ports[i].Name, Proto: ports[i].Proto, Number: ports[i].Port}
		switch {
		case p.TargetPort.Type == intstr.String:
			tp.Number = 0
			tp.Named = p.TargetPort.StrVal
			for _, msg := range validation.IsValidPortName(tp.Named) {
				errs = append(errs, field.Invalid(path, tp.Named, msg))
			}
		case p.TargetPort.IntVal != 0:
			errs = append(errs, validPort(p.TargetPort.IntVal, path, false)...)
			tp.Number = uint16(p.TargetPort.IntVal)
		}
		out.Ports[i] = tp
	}
	return out, errs
}
