// SPDX-License-Identifier: Apache-2.0
/*
 * tenet's kernel fast path: a tc (clsact ingress, direct action) program
 * attached to every VM port of a host and to the host's VXLAN device in
 * `external` (collect metadata) mode.
 *
 *   frame in on a VM port P, or from the VXLAN device with key K
 *     K mapped to a local port?          -> redirect there (egress host), done
 *     flow key = the simulation's FlowMatch, as struct flow_key
 *     flows[loose key] hit (TTL above its floor), else flows[key] hit
 *                                        -> rewrites, outputs; count and stamp
 *     miss, or nothing this program reads -> copy to the upcall ring, drop here
 *
 * A loose flow's key has no TCP flags and no TTL: one flow serves every packet of
 * a connection. The agent installs a flow loose unless its outcome read either;
 * a router's TTL check is kept as the flow's floor (ttl_above) and checked here.
 *
 * The key mirrors tenet.packets.match.extract_match for untagged IPv4 with a
 * 20-byte header and IPv6 without extension headers; anything else (ARP,
 * neighbor discovery, VLAN tags, IP options, IPv6 extension headers, headers
 * extract_match would refuse) is handed to the agent unread, which matches and
 * forwards it in userspace. struct layouts are mirrored in tenet/datapath/kernel.py.
 */
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
};

/* What extract() learned besides the key: where the transport header starts. */
struct parsed {
	__u32 l4off;
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
	__u16 pad[3];
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

/* The frame to the agent, dropped here. */
static __always_inline int punt(struct __sk_buff *skb, struct flow_key *key, __u16 reason)
{
	__u32 zero = 0;
	struct upcall *u = bpf_map_lookup_elem(&scratch, &zero);
	__u32 n = skb->len;

	count(reason == R_MISS ? C_MISSES : C_PUNTED);
	if (!u)
		return TC_ACT_SHOT;
	if (n > MAX_FRAME) {
		count(C_OVERSIZE);
		n = MAX_FRAME;
	}
	if (n < 1)
		return TC_ACT_SHOT;
	u->in_port = key->in_port;
	u->tunnel_key = key->tunnel_key;
	u->len = skb->len;
	u->reason = reason;
	u->vlan_tci = skb->vlan_present ? (skb->vlan_tci & 0x0fff) | 0x1000 : 0;
	u->vlan_proto = skb->vlan_present ? bpf_ntohs(skb->vlan_proto) : 0;
	if (bpf_skb_load_bytes(skb, 0, u->data, n) < 0)
		return TC_ACT_SHOT;
	if (bpf_ringbuf_output(&upcalls, u, offsetof(struct upcall, data) + n, 0) < 0)
		count(C_RING_FULL);
	return TC_ACT_SHOT;
}

static __always_inline int transport(struct __sk_buff *skb, struct flow_key *key, __u32 l4off,
				     __u32 end)
{
	__u8 l4[14];

	if (key->ip_proto == IPPROTO_TCP) {
		if (l4off + 20 > end)
			return -1;
		if (bpf_skb_load_bytes(skb, l4off, l4, 14) < 0)
			return -1;
		if (l4[12] < 0x50 || l4off + ((l4[12] >> 4) << 2) > end)
			return -1;
		key->tcp_flags = l4[13] | ((l4[12] & 1) << 8);
	} else if (key->ip_proto == IPPROTO_UDP) {
		__u16 length;

		if (l4off + 8 > end)
			return -1;
		if (bpf_skb_load_bytes(skb, l4off, l4, 8) < 0)
			return -1;
		length = (l4[4] << 8) | l4[5];
		if (length < 8 || (l4off + length > end && key->ip_frag == FRAG_NONE))
			return -1;
	} else if ((key->ip_proto == IPPROTO_ICMP && key->eth_type == ETH_P_IP) ||
		   (key->ip_proto == IPPROTO_ICMPV6 && key->eth_type == ETH_P_IPV6)) {
		if (l4off + 8 > end)
			return -1;
		if (bpf_skb_load_bytes(skb, l4off, l4, 2) < 0)
			return -1;
		/* neighbor discovery: its match has fields this key does not hold */
		if (key->eth_type == ETH_P_IPV6 && (l4[0] == 135 || l4[0] == 136))
			return -1;
		key->l4_src = l4[0];
		key->l4_dst = l4[1];
		return 0;
	} else {
		return 0;
	}
	key->l4_src = (l4[0] << 8) | l4[1];
	key->l4_dst = (l4[2] << 8) | l4[3];
	return 0;
}

static __always_inline int extract_ipv4(struct __sk_buff *skb, struct flow_key *key,
					struct parsed *p)
{
	struct iphdr ip;
	__u32 end;
	__u16 frag;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return -1;
	if (ip.version != 4 || ip.ihl != 5)
		return -1;
	end = ETH_HLEN + bpf_ntohs(ip.tot_len);
	if (bpf_ntohs(ip.tot_len) < sizeof(ip) || end > skb->len)
		return -1;
	__builtin_memcpy(key->ip_src, &ip.saddr, 4);
	__builtin_memcpy(key->ip_dst, &ip.daddr, 4);
	key->ip_proto = ip.protocol;
	key->ip_tos = ip.tos;
	key->ip_ttl = ip.ttl;
	p->l4off = ETH_HLEN + sizeof(ip);
	frag = bpf_ntohs(ip.frag_off);
	if (frag & 0x1fff) {
		key->ip_frag = FRAG_LATER;
		return 0;
	}
	key->ip_frag = (frag & 0x2000) ? FRAG_FIRST : FRAG_NONE;
	return transport(skb, key, p->l4off, end);
}

static __always_inline int extract_ipv6(struct __sk_buff *skb, struct flow_key *key,
					struct parsed *p)
{
	struct ipv6hdr ip;
	__u32 end, vtf;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return -1;
	__builtin_memcpy(&vtf, &ip, 4);
	vtf = bpf_ntohl(vtf);
	if (vtf >> 28 != 6)
		return -1;
	end = ETH_HLEN + sizeof(ip) + bpf_ntohs(ip.payload_len);
	if (end > skb->len)
		return -1;
	switch (ip.nexthdr) {
	case 0: case 43: case 44: case 51: case 60: /* extension headers: the agent reads them */
		return -1;
	}
	__builtin_memcpy(key->ip_src, &ip.saddr, 16);
	__builtin_memcpy(key->ip_dst, &ip.daddr, 16);
	key->ip_proto = ip.nexthdr;
	key->ip_tos = (vtf >> 20) & 0xff;
	key->ip_ttl = ip.hop_limit;
	key->ip_frag = FRAG_NONE;
	p->l4off = ETH_HLEN + sizeof(ip);
	return transport(skb, key, p->l4off, end);
}

/* Fill key from the frame as extract_match would; 0 on success, -1 when this
 * program does not read the frame (the agent will). */
static __always_inline int extract(struct __sk_buff *skb, struct flow_key *key, struct parsed *p)
{
	struct ethhdr eth;

	if (skb->vlan_present)
		return -1;
	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return -1;
	__builtin_memcpy(key->eth_src, eth.h_source, 6);
	__builtin_memcpy(key->eth_dst, eth.h_dest, 6);
	key->eth_type = bpf_ntohs(eth.h_proto);
	if (key->eth_type == ETH_P_IP)
		return extract_ipv4(skb, key, p);
	if (key->eth_type == ETH_P_IPV6)
		return extract_ipv6(skb, key, p);
	return -1;
}

#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_SRC_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))
#define IP_TTL_OFF (ETH_HLEN + offsetof(struct iphdr, ttl))
#define IP6_HOPS_OFF (ETH_HLEN + offsetof(struct ipv6hdr, hop_limit))

/* Where the L4 checksum is, or 0 when there is none to update. */
static __always_inline __u32 l4_csum_off(struct __sk_buff *skb, struct flow_key *key,
					 struct parsed *p, __u64 *flags)
{
	if (key->ip_frag == FRAG_LATER)
		return 0;
	if (key->ip_proto == IPPROTO_TCP) {
		*flags = 0;
		return p->l4off + 16;
	}
	if (key->ip_proto == IPPROTO_UDP) {
		__u16 csum = 0;

		if (bpf_skb_load_bytes(skb, p->l4off + 6, &csum, 2) < 0 || csum == 0)
			return 0; /* no UDP checksum: nothing to update */
		*flags = BPF_F_MARK_MANGLED_0;
		return p->l4off + 6;
	}
	return 0;
}

/* An IPv4 address (the agent installs IPv6 address rewrites as userspace flows). */
static __always_inline int set_ip(struct __sk_buff *skb, struct flow_key *key, struct parsed *p,
				  __u32 off, __u8 *old_addr, __u32 new)
{
	__u64 fl = 0;
	__u32 csum = l4_csum_off(skb, key, p, &fl);
	__u32 old;

	__builtin_memcpy(&old, old_addr, 4);
	if (old == new)
		return 0;
	if (csum && bpf_l4_csum_replace(skb, csum, old, new, fl | BPF_F_PSEUDO_HDR | 4) < 0)
		return -1;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, 4) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, 4, 0);
}

static __always_inline int set_port(struct __sk_buff *skb, struct flow_key *key, struct parsed *p,
				    __u32 off, __u16 old_host, __u16 new_host)
{
	__u64 fl = 0;
	__u32 csum = l4_csum_off(skb, key, p, &fl);
	__u16 old = bpf_htons(old_host), new = bpf_htons(new_host);

	if (key->ip_proto != IPPROTO_TCP && key->ip_proto != IPPROTO_UDP)
		return 0;
	if (key->ip_frag == FRAG_LATER || old == new)
		return 0;
	if (csum && bpf_l4_csum_replace(skb, csum, old, new, fl | 2) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, p->l4off + off, &new, 2, 0);
}

static __always_inline int rewrite(struct __sk_buff *skb, struct flow_key *key, struct parsed *p,
				   struct flow_val *v)
{
	__u32 flags = v->flags;
	__u8 ttl;

	if ((flags & F_ETH_SRC) && bpf_skb_store_bytes(skb, 6, v->eth_src, 6, 0) < 0)
		return -1;
	if ((flags & F_ETH_DST) && bpf_skb_store_bytes(skb, 0, v->eth_dst, 6, 0) < 0)
		return -1;
	if ((flags & F_L4_SRC) && set_port(skb, key, p, 0, key->l4_src, v->l4_src) < 0)
		return -1;
	if ((flags & F_L4_DST) && set_port(skb, key, p, 2, key->l4_dst, v->l4_dst) < 0)
		return -1;
	ttl = key->ip_ttl > v->dec_ttl ? key->ip_ttl - v->dec_ttl : 0;
	if (key->eth_type == ETH_P_IPV6) {
		if (v->dec_ttl && bpf_skb_store_bytes(skb, IP6_HOPS_OFF, &ttl, 1, 0) < 0)
			return -1;
		return 0;
	}
	if ((flags & F_IP_SRC) && set_ip(skb, key, p, IP_SRC_OFF, key->ip_src, v->ip_src) < 0)
		return -1;
	if ((flags & F_IP_DST) && set_ip(skb, key, p, IP_DST_OFF, key->ip_dst, v->ip_dst) < 0)
		return -1;
	if (v->dec_ttl) {
		/* TTL and protocol share a 16-bit word of the header checksum */
		__u16 old = bpf_htons(((__u16)key->ip_ttl << 8) | key->ip_proto);
		__u16 new = bpf_htons(((__u16)ttl << 8) | key->ip_proto);

		if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, 2) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, IP_TTL_OFF, &ttl, 1, 0) < 0)
			return -1;
	}
	return 0;
}

static __always_inline int send(struct __sk_buff *skb, struct out *o, int last)
{
	if (o->remote) {
		struct bpf_tunnel_key tk = {};

		tk.remote_ipv4 = o->remote;
		tk.tunnel_id = o->key;
		tk.tunnel_ttl = 64;
		if (bpf_skb_set_tunnel_key(skb, &tk, sizeof(tk), BPF_F_ZERO_CSUM_TX) < 0) {
			count(C_ERRORS);
			return TC_ACT_SHOT;
		}
		count(C_TUNNEL_TX);
	} else {
		count(C_TX);
	}
	if (last)
		return bpf_redirect(o->ifindex, 0);
	if (bpf_clone_redirect(skb, o->ifindex, 0) < 0)
		count(C_ERRORS);
	return TC_ACT_SHOT;
}

SEC("tc")
int tenet_ingress(struct __sk_buff *skb)
{
	struct flow_key key = {};
	struct parsed p = {};
	struct flow_val *v;
	struct config *cfg;
	__u32 zero = 0, i, n;
	int rc = TC_ACT_SHOT;
	__u16 tcp_flags;
	__u8 ttl;

	count(C_RX);
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (cfg && cfg->vxlan_ifindex && skb->ifindex == cfg->vxlan_ifindex) {
		struct bpf_tunnel_key tk = {};
		__u32 *port;

		count(C_TUNNEL_RX);
		if (bpf_skb_get_tunnel_key(skb, &tk, sizeof(tk), 0) < 0) {
			count(C_ERRORS);
			return TC_ACT_SHOT;
		}
		key.tunnel_key = tk.tunnel_id;
		port = bpf_map_lookup_elem(&tunnel_ports, &key.tunnel_key);
		if (port) {
			count(C_HITS);
			count(C_TX);
			return bpf_redirect(*port, 0);
		}
	} else {
		key.in_port = skb->ifindex;
	}
	if (extract(skb, &key, &p) < 0)
		return punt(skb, &key, R_UNREAD);
	tcp_flags = key.tcp_flags;
	ttl = key.ip_ttl;
	key.tcp_flags = LOOSE_FLAGS;
	key.ip_ttl = 0;
	v = bpf_map_lookup_elem(&flows, &key);
	key.tcp_flags = tcp_flags;
	key.ip_ttl = ttl; /* rewrite() reads the real TTL */
	if (v && v->ttl_above && ttl <= v->ttl_above)
		v = NULL; /* it runs out on the way: only an exact flow serves it, or the agent */
	if (!v) {
		v = bpf_map_lookup_elem(&flows, &key);
		if (!v)
			return punt(skb, &key, R_MISS);
	}
	if (v->flags & F_USERSPACE)
		return punt(skb, &key, R_USERSPACE);
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, skb->len);
	v->last_used = bpf_ktime_get_ns();
	count(C_HITS);
	n = v->n_out;
	if (n == 0)
		return TC_ACT_SHOT; /* a drop flow */
	if (rewrite(skb, &key, &p, v) < 0) {
		count(C_ERRORS);
		return TC_ACT_SHOT;
	}
	for (i = 0; i < MAX_OUT; i++) {
		if (i >= n)
			break;
		rc = send(skb, &v->outs[i], i + 1 == n);
	}
	return rc;
}

char LICENSE[] SEC("license") = "GPL";
