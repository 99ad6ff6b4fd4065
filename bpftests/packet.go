package bpftests

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Protocol numbers of the headers built here.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flags.
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	ACK = 0x10
)

// Packet describes a frame to build.
type Packet struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.AddrPort
	Proto          uint8
	TCPFlags       uint8
	Payload        []byte
	TTL            uint8  // 64 when 0
	IPOptions      []byte // IPv4 only, padded to 4 bytes
	FragOffset     uint16 // IPv4, in 8-byte units
	MoreFragments  bool
	NoUDPChecksum  bool // IPv4 UDP with checksum 0
}

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
)

// Frame builds the Ethernet frame.
func (p Packet) Frame() []byte {
	ip := p.IP()
	eth := make([]byte, 14, 14+len(ip))
	copy(eth[0:6], orMAC(p.DstMAC, macB))
	copy(eth[6:12], orMAC(p.SrcMAC, macA))
	if p.Src.Addr().Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
	} else {
		binary.BigEndian.PutUint16(eth[12:], 0x86dd)
	}
	return append(eth, ip...)
}

func orMAC(m, def net.HardwareAddr) net.HardwareAddr {
	if m == nil {
		return def
	}
	return m
}

// IP builds the IP packet without the Ethernet header.
func (p Packet) IP() []byte {
	l4 := p.l4()
	if p.Src.Addr().Is4() {
		return ipv4(p.Src.Addr(), p.Dst.Addr(), p.Proto, p.ttl(), p.IPOptions, p.FragOffset, p.MoreFragments, l4)
	}
	return ipv6(p.Src.Addr(), p.Dst.Addr(), p.Proto, p.ttl(), l4)
}

func (p Packet) ttl() uint8 {
	if p.TTL == 0 {
		return 64
	}
	return p.TTL
}

func (p Packet) l4() []byte {
	var h []byte
	switch p.Proto {
	case ProtoTCP:
		h = make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], p.Src.Port())
		binary.BigEndian.PutUint16(h[2:], p.Dst.Port())
		binary.BigEndian.PutUint32(h[4:], 1000)
		h[12] = 5 << 4
		h[13] = p.TCPFlags
		binary.BigEndian.PutUint16(h[14:], 65535)
	case ProtoUDP:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], p.Src.Port())
		binary.BigEndian.PutUint16(h[2:], p.Dst.Port())
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(p.Payload)))
	default:
		panic(fmt.Sprintf("packet: protocol %d not supported", p.Proto))
	}
	seg := append(h, p.Payload...)
	if p.Proto == ProtoUDP && p.NoUDPChecksum && p.Src.Addr().Is4() {
		return seg
	}
	sum := ^fold(pseudoSum(p.Src.Addr(), p.Dst.Addr(), p.Proto, len(seg)) + sum16(seg))
	if p.Proto == ProtoUDP && sum == 0 {
		sum = 0xffff
	}
	off := 16
	if p.Proto == ProtoUDP {
		off = 6
	}
	binary.BigEndian.PutUint16(seg[off:], sum)
	return seg
}

func ipv4(src, dst netip.Addr, proto, ttl uint8, opts []byte, fragOff uint16, mf bool, payload []byte) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	hl := 20 + len(opts)
	h := make([]byte, hl, hl+len(payload))
	h[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(h[2:], uint16(hl+len(payload)))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	frag := fragOff & 0x1fff
	if mf {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8] = ttl
	h[9] = proto
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	copy(h[20:], opts)
	binary.BigEndian.PutUint16(h[10:], ^fold(sum16(h)))
	return append(h, payload...)
}

func ipv6(src, dst netip.Addr, proto, hop uint8, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = proto
	h[7] = hop
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// ICMP4Error builds an ICMP error frame from src to dst quoting the IP
// packet quoted (truncated to its header and 8 bytes, as routers do).
func ICMP4Error(src, dst netip.Addr, typ, code uint8, quoted []byte) []byte {
	ihl := int(quoted[0]&0x0f) * 4
	quoted = quoted[:min(len(quoted), ihl+8)]
	msg := make([]byte, 8, 8+len(quoted))
	msg[0], msg[1] = typ, code
	if typ == 3 && code == 4 {
		binary.BigEndian.PutUint16(msg[6:], 1400) // next-hop MTU
	}
	msg = append(msg, quoted...)
	binary.BigEndian.PutUint16(msg[2:], ^fold(sum16(msg)))
	ip := ipv4(src, dst, ProtoICMP, 64, nil, 0, false, msg)
	eth := make([]byte, 14, 14+len(ip))
	copy(eth[0:6], macB)
	copy(eth[6:12], macA)
	binary.BigEndian.PutUint16(eth[12:], 0x0800)
	return append(eth, ip...)
}

// ICMP6Error builds an ICMPv6 error frame (1 destination unreachable,
// 2 packet too big, 3 time exceeded) from src to dst quoting the IPv6
// packet quoted (its header and 8 bytes).
func ICMP6Error(src, dst netip.Addr, typ, code uint8, quoted []byte) []byte {
	quoted = quoted[:min(len(quoted), 40+8)]
	msg := make([]byte, 8, 8+len(quoted))
	msg[0], msg[1] = typ, code
	if typ == 2 {
		binary.BigEndian.PutUint32(msg[4:], 1280) // MTU
	}
	msg = append(msg, quoted...)
	binary.BigEndian.PutUint16(msg[2:], ^fold(pseudoSum(src, dst, ProtoICMPv6, len(msg))+sum16(msg)))
	ip := ipv6(src, dst, ProtoICMPv6, 64, msg)
	eth := make([]byte, 14, 14+len(ip))
	copy(eth[0:6], macB)
	copy(eth[6:12], macA)
	binary.BigEndian.PutUint16(eth[12:], 0x86dd)
	return append(eth, ip...)
}

func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func pseudoSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	var s uint32
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		s = sum16(a[:]) + sum16(b[:])
	} else {
		a, b := src.As16(), dst.As16()
		s = sum16(a[:]) + sum16(b[:])
	}
	return s + uint32(proto) + uint32(length)
}

// Parsed is a frame as read back, with every checksum verified.
type Parsed struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.AddrPort
	Proto          uint8
	TTL            uint8
	TCPFlags       uint8
	UDPChecksum    uint16
	ICMPType       uint8
	// Quoted is the packet an ICMP error carries (ports only at L4).
	Quoted *Parsed
}

// Parse reads a frame back and fails when any checksum is wrong.
func Parse(frame []byte) (*Parsed, error) {
	if len(frame) < 14 {
		return nil, errors.New("frame shorter than an Ethernet header")
	}
	p := &Parsed{DstMAC: net.HardwareAddr(frame[0:6]), SrcMAC: net.HardwareAddr(frame[6:12])}
	return p, p.parseIP(frame[14:], false)
}

func (p *Parsed) parseIP(b []byte, quoted bool) error {
	if len(b) < 20 {
		return errors.New("truncated IP header")
	}
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return fmt.Errorf("bad IHL %d", ihl)
		}
		if s := fold(sum16(b[:ihl])); s != 0xffff {
			return fmt.Errorf("IPv4 header checksum wrong (sum %#x)", s)
		}
		p.TTL, p.Proto = b[8], b[9]
		src, _ := netip.AddrFromSlice(b[12:16])
		dst, _ := netip.AddrFromSlice(b[16:20])
		p.Src, p.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		end := int(binary.BigEndian.Uint16(b[2:]))
		if quoted {
			end = len(b)
		}
		if end > len(b) || end < ihl {
			return fmt.Errorf("IPv4 total length %d beyond the %d bytes there", end, len(b))
		}
		l4 = b[ihl:end]
	case 6:
		if len(b) < 40 {
			return errors.New("truncated IPv6 header")
		}
		p.TTL, p.Proto = b[7], b[6]
		src, _ := netip.AddrFromSlice(b[8:24])
		dst, _ := netip.AddrFromSlice(b[24:40])
		p.Src, p.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		end := 40 + int(binary.BigEndian.Uint16(b[4:]))
		if quoted || end > len(b) {
			end = len(b)
		}
		l4 = b[40:end]
	default:
		return fmt.Errorf("IP version %d", b[0]>>4)
	}
	return p.parseL4(l4, quoted)
}

func (p *Parsed) parseL4(l4 []byte, quoted bool) error {
	switch p.Proto {
	case ProtoTCP, ProtoUDP:
		if len(l4) < 8 {
			return errors.New("truncated L4 header")
		}
		p.Src = netip.AddrPortFrom(p.Src.Addr(), binary.BigEndian.Uint16(l4[0:]))
		p.Dst = netip.AddrPortFrom(p.Dst.Addr(), binary.BigEndian.Uint16(l4[2:]))
		if quoted {
			return nil // only 8 bytes quoted: no checksum to verify
		}
		if p.Proto == ProtoTCP {
			p.TCPFlags = l4[13]
		} else {
			p.UDPChecksum = binary.BigEndian.Uint16(l4[6:])
			if p.UDPChecksum == 0 && p.Src.Addr().Is4() {
				return nil
			}
		}
		if s := fold(pseudoSum(p.Src.Addr(), p.Dst.Addr(), p.Proto, len(l4)) + sum16(l4)); s != 0xffff {
			return fmt.Errorf("%d checksum wrong (sum %#x)", p.Proto, s)
		}
	case ProtoICMPv6:
		if len(l4) < 8 {
			return errors.New("truncated ICMPv6 header")
		}
		if s := fold(pseudoSum(p.Src.Addr(), p.Dst.Addr(), ProtoICMPv6, len(l4)) + sum16(l4)); s != 0xffff {
			return fmt.Errorf("ICMPv6 checksum wrong (sum %#x)", s)
		}
		p.ICMPType = l4[0]
		if p.ICMPType >= 1 && p.ICMPType <= 3 {
			p.Quoted = &Parsed{}
			return p.Quoted.parseIP(l4[8:], true)
		}
	case ProtoICMP:
		if len(l4) < 8 {
			return errors.New("truncated ICMP header")
		}
		if s := fold(sum16(l4)); s != 0xffff {
			return fmt.Errorf("ICMP checksum wrong (sum %#x)", s)
		}
		p.ICMPType = l4[0]
		if p.ICMPType == 3 || p.ICMPType == 11 {
			p.Quoted = &Parsed{}
			return p.Quoted.parseIP(l4[8:], true)
		}
	}
	return nil
}
