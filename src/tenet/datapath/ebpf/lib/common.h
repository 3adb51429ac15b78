// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * What every part of tenet's tc program shares: the flag and counter numbers, the
 * structs the agent reads and writes (mirrored field by field in
 * tenet/datapath/kernel/layout.py and checked against this program's BTF when the
 * datapath opens), and the maps.
 *
 * Invariants: every struct here has no implicit padding (a pad is a named member),
 * so its BTF members are exactly the Python layout's fields; a map's key and value
 * are one of these structs or a __u32/__u64, and the agent checks their sizes
 * against the loaded map before it touches it.
 */
#ifndef TENET_COMMON_H
#define TENET_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_OUT 8
#define MAX_FRAME 9216

#define F_ETH_SRC (1u << 0)
#define F_ETH_DST (1u << 1)
#define F_IP_SRC (1u << 2)
#define F_IP_DST (1u << 3)
#define F_L4_SRC (1u << 4)
#define F_L4_DST (1u << 5)
#define F_USERSPACE (1u << 6) /* the agent applies this flow's actions */

/* The VNI of flow-state frames between agents: always handed to the agent, never
 * forwarded (tenet.datapath.base.STATE_VNI). */
#define STATE_VNI 0xffffff

#define FRAG_NONE 0
#define FRAG_FIRST 1
#define FRAG_LATER 2

enum counter {
	C_RX,          /* frames seen */
	C_HITS,        /* forwarded (or dropped) by a flow here */
	C_MISSES,      /* no flow: handed to the agent */
	C_PUNTED,      /* not read here (ARP, IPv6, ...): handed to the agent */
	C_RING_FULL,   /* handed over, but the ring was full: dropped */
	C_TUNNEL_RX,   /* frames from the VXLAN device */
	C_TUNNEL_TX,   /* copies sent to the VXLAN device */
	C_TX,          /* copies sent to local ports */
	C_ERRORS,      /* a helper failed (rewrite, redirect) */
	C_OVERSIZE,    /* frames longer than MAX_FRAME handed over truncated */
	C_MAX,
};

enum reason { R_MISS = 1, R_UNREAD = 2, R_USERSPACE = 3 };

/* A loose flow's key: tcp_flags holds this marker (no frame has it: flags are 9 bits)
 * and ip_ttl 0. Its outcome holds for any TCP flags and any TTL above its ttl_above;
 * most flows are loose, so they are looked up first. */
#define LOOSE_FLAGS 0xffff

struct flow_key {
	__u32 in_port;    /* ifindex of the VM port; 0 for the VXLAN device */
	__u32 tunnel_key; /* the VNI of a frame from the VXLAN device */
	__u8 eth_src[6];
	__u8 eth_dst[6];
	__u16 eth_type;   /* host order */
	__u8 ip_proto;
	__u8 ip_tos;
	__u8 ip_ttl;
	__u8 ip_frag;
	__u16 l4_src;     /* host order; ICMP type */
	__u16 l4_dst;     /* host order; ICMP code */
	__u16 tcp_flags;
	__u8 ip_src[16];  /* as on the wire; an IPv4 address in the first 4 bytes */
	__u8 ip_dst[16];
	__u16 icmp_id;    /* host order; an ICMP(v6) echo's identifier, else 0 */
	__u16 pad;
};

struct out {
	__u32 ifindex;    /* a local port, or the VXLAN device */
	__u32 remote;     /* tunnel endpoint (host order), 0 for a local port */
	__u32 key;        /* tunnel key */
};

struct flow_val {
	__u64 packets;
	__u64 bytes;
	__u64 last_used;  /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u32 flags;
	__u8 dec_ttl;
	__u8 n_out;
	__u16 l4_src;     /* host order */
	__u16 l4_dst;     /* host order */
	__u8 eth_src[6];
	__u8 eth_dst[6];
	__u8 ttl_above;   /* a loose flow: a frame with a TTL at or under it is not its own */
	__u8 pad;
	__u32 ip_src;     /* network order */
	__u32 ip_dst;     /* network order */
	struct out outs[MAX_OUT];
	__u64 tcp_flags_seen; /* the OR of the TCP flags of every frame it served */
};

struct config {
	__u32 vxlan_ifindex;
	__u32 local_ip;   /* host order; the underlay address tunnels leave from */
};

struct upcall {
	__u32 in_port;
	__u32 tunnel_key;
	__u32 len;        /* the frame's length (data holds min(len, MAX_FRAME)) */
	__u16 reason;
	__u16 vlan_tci;   /* an offloaded VLAN tag, with bit 12 (0x1000) set if present */
	__u16 vlan_proto; /* host order */
	__u16 pad;
	__u32 tunnel_src; /* host order; a frame from the VXLAN device: its outer source */
	__u8 data[MAX_FRAME];
};

/* Allocated as flows are installed (the agent's flow table holds at most 100k). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);   /* tunnel key */
	__type(value, __u32); /* ifindex of the local port */
} tunnel_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} upcalls SEC(".maps");

/* Where an upcall record is put together before it is copied to the ring. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct upcall);
} scratch SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		*c += 1;
}

#endif /* TENET_COMMON_H */
