// Package config parses and checks hivelet-cni's network configuration:
// the CNI plugin conf the runtime passes on stdin, with the pod address
// ranges in host-local's format. Every error is a CNI error with a code
// and a message that names the field to fix.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"

	"github.com/hivelet/hivelet/datapath/pins"
)

// Versions are the CNI spec versions hivelet-cni speaks; results are
// converted to the one the network config asks for. 0.1.0 and 0.2.0
// cannot carry a dual-stack result.
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Error codes of this plugin beyond the CNI spec's (100 and up are the
// plugin's own, by the spec).
const (
	// ErrPoolExhausted: no free address left in a pod range.
	ErrPoolExhausted uint = 100
	// ErrNameClash: the interface name is taken in the pod or on the host.
	ErrNameClash uint = 101
)

const (
	// DefaultMTU fits any Ethernet underlay without an overlay.
	DefaultMTU = 1500
	// DefaultDataDir is where addresses are recorded, as host-local does.
	DefaultDataDir = "/var/lib/cni/networks"
)

// Conf is one hivelet-cni network.
type Conf struct {
	types.PluginConf
	// MTU of both ends of the pod's veth.
	MTU int `json:"mtu,omitempty"`
	// BPFFS is where the node's agent pins its datapath; STATUS reports
	// not ready until it is there.
	BPFFS string `json:"bpffs,omitempty"`
	// Standalone drops STATUS's dependency on the agent, for nodes that
	// run the plugin without it.
	Standalone bool `json:"standalone,omitempty"`
	// SourceAddressCheck (default true) lets a pod send only from its own
	// addresses: a BPF check on the host end of its veth.
	SourceAddressCheck *bool `json:"sourceAddressCheck,omitempty"`

	// IPAM is the parsed "ipam" section: host-local's ranges and data dir.
	IPAM *allocator.IPAMConfig `json:"-"`
}

// CheckSources is SourceAddressCheck with its default.
func (c *Conf) CheckSources() bool { return c.SourceAddressCheck == nil || *c.SourceAddressCheck }

// Parse decodes and validates stdin of a CNI call; cniArgs is CNI_ARGS
// (it may request an address with IP=...).
func Parse(stdin []byte, cniArgs string) (*Conf, error) {
	c := &Conf{}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, decodeError(err)
	}
	if c.Name == "" {
		return nil, invalid("name: missing; every CNI network needs a name")
	}
	switch {
	case c.MTU == 0:
		c.MTU = DefaultMTU
	case c.MTU < 576 || c.MTU > 65535:
		// 576: the smallest IPv4 datagram every host must accept; IPv6
		// needs 1280, checked below once the families are known.
		return nil, invalid(fmt.Sprintf("mtu: %d is out of range (576 to 65535)", c.MTU))
	}
	if c.BPFFS == "" {
		c.BPFFS = pins.DefaultBPFFS
	}
	if t := c.PluginConf.IPAM.Type; t != "" && t != "hivelet" {
		return nil, invalid(fmt.Sprintf("ipam.type: %q is not supported; hivelet-cni allocates addresses itself: "+
			`drop "type" and give host-local style "ranges" (and optionally "dataDir")`, t))
	}
	ipam, _, err := allocator.LoadIPAMConfig(stdin, cniArgs)
	if err != nil {
		return nil, invalid("ipam: " + err.Error())
	}
	if ipam.DataDir == "" {
		ipam.DataDir = DefaultDataDir
	}
	ipam.Name = c.Name
	for i, rs := range ipam.Ranges {
		if rs[0].Subnet.IP.To4() == nil && c.MTU < 1280 {
			return nil, invalid(fmt.Sprintf("mtu: %d is below IPv6's minimum 1280, and ipam.ranges[%d] is IPv6", c.MTU, i))
		}
	}
	c.IPAM = ipam
	return c, nil
}

// decodeError turns a JSON error into a CNI decoding error that says
// which field was wrong and how.
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("parse network config: field %s: got a JSON %s, want %s", field, te.Value, jsonKind(te.Type.Kind().String())), "")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("parse network config: invalid JSON at byte %d: %v", se.Offset, err), "")
	}
	return types.NewError(types.ErrDecodingFailure, "parse network config: "+err.Error(), "")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "a list"
	case "struct", "map":
		return "an object"
	}
	return goKind
}

func invalid(msg string) error {
	return types.NewError(types.ErrInvalidNetworkConfig, "invalid network config: "+msg, "")
}

// Families reports which IP families the ranges give a pod.
func (c *Conf) Families() (v4, v6 bool) {
	for _, rs := range c.IPAM.Ranges {
		if rs[0].Subnet.IP.To4() != nil {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

// DefaultRoutes are the routes every pod gets: a default route per family
// it has an address in.
func (c *Conf) DefaultRoutes() []*types.Route {
	v4, v6 := c.Families()
	var rs []*types.Route
	if v4 {
		rs = append(rs, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}})
	}
	if v6 {
		rs = append(rs, &types.Route{Dst: net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}})
	}
	return rs
}
