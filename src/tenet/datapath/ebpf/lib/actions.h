// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A flow's rewrites, applied to the frame in place: Ethernet addresses, TCP/UDP
 * ports, IPv4 addresses and the TTL / hop limit, each with its checksums updated
 * (the IPv4 header checksum; the TCP or UDP checksum, whose pseudo-header covers
 * the addresses). They are applied in this fixed order, not in the order of the
 * agent's action list: the encoder (kernel_value) holds one value per field, so
 * the result is the list's (the integration test test_kernel_encoder compares
 * every kind against tenet.packets.actions.interpret).
 *
 * Invariants: a UDP checksum of 0 (none) stays 0, and one that updates to 0 is
 * written 0xffff (BPF_F_MARK_MANGLED_0); a later fragment carries no transport
 * header, so only its IP header changes. IPv6 address rewrites are not here: the
 * agent installs them as userspace flows (F_USERSPACE).
 */
#ifndef TENET_ACTIONS_H
#define TENET_ACTIONS_H

#include "common.h"
#include "parse.h"

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

#endif /* TENET_ACTIONS_H */
