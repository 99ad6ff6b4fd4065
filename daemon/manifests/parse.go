package manifests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
)

// objKey identifies an object across loads.
type objKey struct {
	Kind      string
	Namespace string
	Name      string
}

func (k objKey) String() string { return k.Kind + " " + k.Namespace + "/" + k.Name }

// object is one accepted manifest: exactly one field is set. An ignored
// object (a headless, ExternalName or other proxy's Service, an FQDN
// slice) is accepted but not served. Three pointers and no key: a file can
// hold 100k of them, and the key is derived from the model's own strings.
type object struct {
	svc   *lb.Service
	slice *lb.EndpointSlice
	ign   *ignoredObject
}

type ignoredObject struct {
	key    objKey
	reason string
}

func (o object) key() objKey {
	switch {
	case o.svc != nil:
		return objKey{Kind: kindService, Namespace: o.svc.Name.Namespace, Name: o.svc.Name.Name}
	case o.slice != nil:
		return objKey{Kind: kindEndpointSlice, Namespace: o.slice.Namespace, Name: o.slice.Name}
	case o.ign != nil:
		return o.ign.key
	}
	return objKey{}
}

// parsed is one document of a file.
type parsed struct {
	doc int
	key objKey // zero when the document could not even be identified
	obj object
	err error
}

// ObjectError is a manifest the agent rejected: where it is, what it is,
// and which field is wrong.
type ObjectError struct {
	File string
	Doc  int    // 1-based document number within the file
	Obj  string // "Service default/web", empty when unidentifiable
	Err  error
}

func (e *ObjectError) Error() string {
	if e.Obj == "" {
		return fmt.Sprintf("%s: document %d: %v", e.File, e.Doc, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.File, e.Obj, e.Err)
}

func (e *ObjectError) Unwrap() error { return e.Err }

const (
	kindService       = "Service"
	kindEndpointSlice = "EndpointSlice"
)

// parseFile splits a YAML or JSON stream into documents and converts each.
// Documents of other kinds are skipped: a manifests dir may hold a whole
// application.
func parseFile(data []byte, intern func(string) string) ([]parsed, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []parsed
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("document %d: %w", doc, err)
		}
		if p, ok := parseDoc(doc, raw, intern); ok {
			out = append(out, p)
		}
	}
}

// unmarshalStrict decodes one document, refusing unknown fields. JSON
// documents skip the YAML-to-JSON conversion: large generated manifest
// sets load several times faster.
func unmarshalStrict(raw []byte, v any) error {
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		return dec.Decode(v)
	}
	return yaml.UnmarshalStrict(raw, v)
}

// parseDoc decodes one document. Objects live as long as they are
// served, so repeated strings are shared: namespaces through intern, and
// the key reuses the model's strings instead of the header's copies.
func parseDoc(doc int, raw []byte, intern func(string) string) (parsed, bool) {
	p, ok := decodeDoc(doc, raw)
	switch {
	case p.obj.svc != nil:
		p.obj.svc.Name.Namespace = intern(p.obj.svc.Name.Namespace)
		p.key = p.obj.key()
	case p.obj.slice != nil:
		s := p.obj.slice
		s.Namespace = intern(s.Namespace)
		s.Service.Namespace = s.Namespace
		p.key = p.obj.key()
	}
	return p, ok
}

func decodeDoc(doc int, raw []byte) (parsed, bool) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	var err error
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && trimmed[0] == '{' {
		err = json.Unmarshal(trimmed, &head)
	} else {
		err = yaml.Unmarshal(raw, &head)
	}
	if err != nil {
		return parsed{doc: doc, err: fmt.Errorf("not valid YAML or JSON: %w", err)}, true
	}
	if head.APIVersion == "" && head.Kind == "" {
		return parsed{}, false // empty document or only comments
	}
	ns := head.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	p := parsed{doc: doc, key: objKey{Kind: head.Kind, Namespace: ns, Name: head.Metadata.Name}}
	switch {
	case head.APIVersion == "v1" && head.Kind == kindService:
		var in corev1.Service
		if err := unmarshalStrict(raw, &in); err != nil {
			p.err = err
			return p, true
		}
		if reason := lb.Ignored(&in); reason != "" {
			p.obj.ign = &ignoredObject{key: p.key, reason: reason}
			return p, true
		}
		svc, errs := lb.ConvertService(&in)
		if len(errs) == 0 {
			svc.Selector, errs = lb.ConvertSelector(&in, svc.Ports)
		}
		p.obj.svc, p.err = svc, errs.ToAggregate()
	case head.APIVersion == "discovery.k8s.io/v1" && head.Kind == kindEndpointSlice:
		var in discoveryv1.EndpointSlice
		if err := unmarshalStrict(raw, &in); err != nil {
			p.err = err
			return p, true
		}
		slice, errs := lb.ConvertEndpointSlice(&in)
		p.obj.slice, p.err = slice, errs.ToAggregate()
		if slice == nil && p.err == nil {
			p.obj.ign = &ignoredObject{key: p.key, reason: "FQDN EndpointSlices carry no addresses"}
		}
	case head.Kind == kindService || head.Kind == kindEndpointSlice:
		p.err = fmt.Errorf("apiVersion %q: want v1 for Service and discovery.k8s.io/v1 for EndpointSlice", head.APIVersion)
	default:
		return parsed{}, false
	}
	if p.err != nil {
		p.obj = object{}
	}
	return p, true
}
