// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only)
/*
 * lbspeaker's service dataplane: tc programs that translate packets for LoadBalancer
 * addresses to backends and their replies back (see docs/dataplane.md).
 *
 *   lb_ingress (tc ingress of the uplink and of interfaces facing backends):
 *     1. a reply of a tracked flow (lb_ct/lb_ct_any, direction REV): reverse NAT, forward;
 *     2. a packet to a frontend (lb_services slot 0): the flow's backend (conntrack, or a
 *        new choice: random slot or Maglev table), DNAT, SNAT to the node unless the
 *        backend is local or the service is externalTrafficPolicy=Local, forward;
 *     3. an ICMP error about a translated packet: translated back (path-MTU discovery).
 *   lb_egress (tc egress of the uplink): 1 and 3 only, for replies and ICMP errors the
 *     kernel forwarded or made itself.
 *
 * Everything else passes untouched. Translated packets are forwarded by FIB lookup and
 * redirect when the FIB has an answer, otherwise handed to the kernel.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb.h"

/* From linux/icmp.h and linux/icmpv6.h, which pull in libc headers. */
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define PIN __uint(pinning, LIBBPF_PIN_BY_NAME)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_svc_val);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN;
} lb_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN;
} lb_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct lb_rev_nat);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN;
} lb_rev_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_ct_key);
	__type(value, struct lb_ct_val);
	__uint(max_entries, 262144);
	PIN;
} lb_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_ct_key);
	__type(value, struct lb_ct_val);
	__uint(max_entries, 131072);
	PIN;
} lb_ct_any SEC(".maps");

/* Maglev tables, one region of maglev_m entries per service that asks for one. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 16381 * 16);
	PIN;
} lb_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_config);
	__uint(max_entries, 1);
	PIN;
} lb_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb_iface);
	__uint(max_entries, 256);
	PIN;
} lb_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, LB_STAT_MAX);
	PIN;
} lb_stats SEC(".maps");

/* A parsed packet: its tuple and where its headers are. */
struct pkt {
	struct lb_addr saddr;
	struct lb_addr daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 v6;
	__u8 tcp_flags;
	__u8 pad;
	__u32 l3;
	__u32 l4;
	__u32 csum_off; /* the L4 checksum */
	__u32 tot_len;  /* L3 length, for the FIB's MTU check */
};

#define L3 ETH_HLEN

/* TCP flags, as the 14th byte of the TCP header. */
#define TCP_FLAG_FIN_BYTE 0x01
#define TCP_FLAG_SYN_BYTE 0x02
#define TCP_FLAG_RST_BYTE 0x04
#define TCP_FLAG_ACK_BYTE 0x10

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&lb_stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline __u32 now_secs(void)
{
	return (__u32)(bpf_ktime_get_ns() / 1000000000ULL);
}

static __always_inline void addr_v4(struct lb_addr *a, __u32 v4)
{
	a->w[0] = 0;
	a->w[1] = 0;
	a->w[2] = bpf_htonl(0xffff);
	a->w[3] = v4;
}

static __always_inline int addr_eq(const struct lb_addr *a, const struct lb_addr *b)
{
	return a->w[0] == b->w[0] && a->w[1] == b->w[1] && a->w[2] == b->w[2] &&
	       a->w[3] == b->w[3];
}

static __always_inline int addr_zero(const struct lb_addr *a)
{
	return (a->w[0] | a->w[1] | a->w[2] | a->w[3]) == 0;
}

static __always_inline __u32 csum_add(__u32 csum, __u32 addend)
{
	csum += addend;
	return csum + (csum < addend);
}

static __always_inline __u16 csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/* A stored checksum after data changed by `diff` (a bpf_csum_diff result). */
static __always_inline __u16 csum_apply(__u16 csum, __u32 diff)
{
	return csum_fold(csum_add((__u16)~csum, diff));
}

static __always_inline int ct_is_tcp(__u8 proto)
{
	return proto == IPPROTO_TCP;
}

static __always_inline struct lb_ct_val *ct_lookup(struct lb_ct_key *k)
{
	if (ct_is_tcp(k->proto))
		return bpf_map_lookup_elem(&lb_ct, k);
	return bpf_map_lookup_elem(&lb_ct_any, k);
}

static __always_inline long ct_update(struct lb_ct_key *k, struct lb_ct_val *v, __u64 flags)
{
	if (ct_is_tcp(k->proto))
		return bpf_map_update_elem(&lb_ct, k, v, flags);
	return bpf_map_update_elem(&lb_ct_any, k, v, flags);
}

/* Reads the ports (or nothing, for ICMP) of the L4 header at p->l4. */
static __always_inline int parse_l4(struct __sk_buff *skb, struct pkt *p)
{
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		__u16 ports[2];
		if (bpf_skb_load_bytes(skb, p->l4, ports, sizeof(ports)) < 0)
			return -1;
		p->sport = ports[0];
		p->dport = ports[1];
		if (p->proto == IPPROTO_TCP) {
			__u8 fl;
			if (bpf_skb_load_bytes(skb, p->l4 + 13, &fl, 1) < 0)
				return -1;
			p->tcp_flags = fl;
			p->csum_off = p->l4 + offsetof(struct tcphdr, check);
		} else {
			p->csum_off = p->l4 + offsetof(struct udphdr, check);
		}
		return 0;
	}
	if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6)
		return 0;
	return -1;
}

/* 0: parsed; -1: not ours (not IP, not TCP/UDP/ICMP, truncated); -2: an IPv4 fragment. */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	p->l3 = L3;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, L3, &ip, sizeof(ip)) < 0)
			return -1;
		if (ip.ihl < 5 || ip.version != 4)
			return -1;
		addr_v4(&p->saddr, ip.saddr);
		addr_v4(&p->daddr, ip.daddr);
		p->proto = ip.protocol;
		p->v6 = 0;
		p->l4 = L3 + ip.ihl * 4;
		p->tot_len = bpf_ntohs(ip.tot_len);
		if (ip.frag_off & bpf_htons(0x1fff | 0x2000))
			return -2;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, L3, &ip6, sizeof(ip6)) < 0)
			return -1;
		__builtin_memcpy(&p->saddr, &ip6.saddr, 16);
		__builtin_memcpy(&p->daddr, &ip6.daddr, 16);
		/* Extension headers are not walked: such packets pass untranslated. */
		p->proto = ip6.nexthdr;
		p->v6 = 1;
		p->l4 = L3 + sizeof(struct ipv6hdr);
		p->tot_len = bpf_ntohs(ip6.payload_len) + sizeof(struct ipv6hdr);
	} else {
		return -1;
	}
	return parse_l4(skb, p);
}

static __always_inline __u64 l4_mangle_flags(const struct pkt *p)
{
	/* A UDP checksum of zero (IPv4: none computed) stays zero; a result of zero is
	 * written as 0xffff. */
	return p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

static __always_inline int rewrite_addr(struct __sk_buff *skb, struct pkt *p, __u32 off4,
					__u32 off6, const struct lb_addr *old,
					const struct lb_addr *new)
{
	if (addr_eq(old, new))
		return 0;
	__u64 mm = l4_mangle_flags(p);
	if (!p->v6) {
		__u32 o = old->w[3], n = new->w[3];
		if (bpf_l4_csum_replace(skb, p->csum_off, o, n, BPF_F_PSEUDO_HDR | mm | 4) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, p->l3 + offsetof(struct iphdr, check), o, n, 4) < 0)
			return -1;
		return bpf_skb_store_bytes(skb, p->l3 + off4, &n, 4, 0) < 0 ? -1 : 0;
	}
	__s64 diff = bpf_csum_diff((__be32 *)old->w, 16, (__be32 *)new->w, 16, 0);
	if (bpf_l4_csum_replace(skb, p->csum_off, 0, diff, BPF_F_PSEUDO_HDR | mm) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, p->l3 + off6, new->w, 16, 0) < 0 ? -1 : 0;
}

static __always_inline int rewrite_port(struct __sk_buff *skb, struct pkt *p, __u32 off,
					__u16 old, __u16 new)
{
	if (old == new)
		return 0;
	if (bpf_l4_csum_replace(skb, p->csum_off, old, new, l4_mangle_flags(p) | 2) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, p->l4 + off, &new, 2, 0) < 0 ? -1 : 0;
}

/* Rewrites the tuple of a TCP/UDP packet, with incremental checksum updates, and leaves the
 * new tuple in *p. */
static __always_inline int rewrite(struct __sk_buff *skb, struct pkt *p,
				   const struct lb_addr *saddr, __u16 sport,
				   const struct lb_addr *daddr, __u16 dport)
{
	if (rewrite_addr(skb, p, offsetof(struct iphdr, saddr),
			 offsetof(struct ipv6hdr, saddr), &p->saddr, saddr) < 0)
		return -1;
	if (rewrite_addr(skb, p, offsetof(struct iphdr, daddr),
			 offsetof(struct ipv6hdr, daddr), &p->daddr, daddr) < 0)
		return -1;
	if (rewrite_port(skb, p, 0, p->sport, sport) < 0)
		return -1;
	if (rewrite_port(skb, p, 2, p->dport, dport) < 0)
		return -1;
	p->saddr = *saddr;
	p->daddr = *daddr;
	p->sport = sport;
	p->dport = dport;
	return 0;
}

static __always_inline int dec_ttl(struct __sk_buff *skb, struct pkt *p)
{
	if (!p->v6) {
		__u8 ttl;
		if (bpf_skb_load_bytes(skb, p->l3 + offsetof(struct iphdr, ttl), &ttl, 1) < 0 ||
		    ttl <= 1)
			return -1;
		/* TTL is the high byte of the 16-bit word it shares with the protocol. */
		__u16 old = bpf_htons((__u16)ttl << 8), new = bpf_htons((__u16)(ttl - 1) << 8);
		if (bpf_l3_csum_replace(skb, p->l3 + offsetof(struct iphdr, check), old, new, 2) < 0)
			return -1;
		ttl--;
		return bpf_skb_store_bytes(skb, p->l3 + offsetof(struct iphdr, ttl), &ttl, 1, 0);
	}
	__u8 hl;
	if (bpf_skb_load_bytes(skb, p->l3 + offsetof(struct ipv6hdr, hop_limit), &hl, 1) < 0 ||
	    hl <= 1)
		return -1;
	hl--;
	return bpf_skb_store_bytes(skb, p->l3 + offsetof(struct ipv6hdr, hop_limit), &hl, 1, 0);
}

/* Forwards a translated packet arriving on ingress: FIB lookup and redirect when the FIB
 * gives an answer (this also keeps packets with the node's own source address, after SNAT,
 * away from the kernel's martian check); otherwise the kernel routes it, and sends the
 * ICMP errors (fragmentation needed, TTL) a router sends. */
static __always_inline int forward(struct __sk_buff *skb, struct pkt *p)
{
	struct bpf_fib_lookup fib = {};
	fib.ifindex = skb->ingress_ifindex;
	fib.l4_protocol = p->proto;
	fib.sport = p->sport;
	fib.dport = p->dport;
	/* GSO packets are segmented to the egress MTU later: no MTU check for them. */
	fib.tot_len = skb->gso_size ? 0 : p->tot_len;
	if (!p->v6) {
		fib.family = AF_INET;
		fib.ipv4_src = p->saddr.w[3];
		fib.ipv4_dst = p->daddr.w[3];
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, p->saddr.w, 16);
		__builtin_memcpy(fib.ipv6_dst, p->daddr.w, 16);
	}
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (dec_ttl(skb, p) < 0)
			return TC_ACT_OK;
		if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0) < 0)
			return TC_ACT_SHOT;
		stat_inc(LB_STAT_REDIRECT);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (dec_ttl(skb, p) < 0)
			return TC_ACT_OK;
		struct bpf_redir_neigh nh = {};
		if (!p->v6) {
			nh.nh_family = AF_INET;
			nh.ipv4_nh = fib.ipv4_dst;
		} else {
			nh.nh_family = AF_INET6;
			__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
		}
		stat_inc(LB_STAT_REDIRECT);
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	return TC_ACT_OK;
}

static __always_inline void ct_touch(struct lb_ct_val *v, const struct pkt *p, __u16 extra)
{
	__u32 now = now_secs();
	if (v->last_seen != now)
		v->last_seen = now;
	__u16 fl = extra;
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FLAG_FIN_BYTE | TCP_FLAG_RST_BYTE)))
		fl |= LB_CT_CLOSING;
	/* A lost race between CPUs only delays a flag to the flow's next packet. */
	if ((v->flags & fl) != fl)
		v->flags |= fl;
}

/* A reply of a tracked flow: source becomes the frontend, destination the client. */
static __always_inline int reverse(struct __sk_buff *skb, struct pkt *p, struct lb_ct_val *rev,
				   int ingress)
{
	__u16 id = rev->rev_nat_id;
	struct lb_rev_nat *rn = bpf_map_lookup_elem(&lb_rev_nat, &id);
	if (!rn)
		return TC_ACT_OK;
	ct_touch(rev, p, LB_CT_SEEN);
	struct lb_addr client = rev->nat_addr, vip = rn->addr;
	__u16 cport = rev->nat_port, vport = rn->port;
	if (rewrite(skb, p, &vip, vport, &client, cport) < 0)
		return TC_ACT_SHOT;
	stat_inc(LB_STAT_REVERSED);
	return ingress ? forward(skb, p) : TC_ACT_OK;
}

static __always_inline __u32 tuple_hash(const struct pkt *p)
{
	__u32 h = 0x9e3779b9u ^ p->proto;
	__u32 words[6] = {p->saddr.w[0], p->saddr.w[1], p->saddr.w[2], p->saddr.w[3],
			  ((__u32)p->sport << 16) | p->dport, p->daddr.w[3]};
#pragma unroll
	for (int i = 0; i < 6; i++) {
		__u32 k = words[i] * 0xcc9e2d51u;
		k = (k << 15) | (k >> 17);
		h ^= k * 0x1b873593u;
		h = ((h << 13) | (h >> 19)) * 5 + 0xe6546b64u;
	}
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* The backend for a new flow: a random active slot, or the service's Maglev table. */
static __always_inline __u32 select_backend(const struct pkt *p, const struct lb_svc_key *fk,
					    const struct lb_svc_val *svc,
					    const struct lb_config *cfg)
{
	if (svc->flags & LB_SVC_MAGLEV) {
		__u32 m = cfg->maglev_m;
		if (m == 0)
			return 0;
		__u32 idx = svc->maglev_slot * m + tuple_hash(p) % m;
		__u32 *id = bpf_map_lookup_elem(&lb_maglev, &idx);
		return id ? *id : 0;
	}
	struct lb_svc_key sk = *fk;
	sk.slot = (bpf_get_prandom_u32() % svc->count) + 1;
	struct lb_svc_val *s = bpf_map_lookup_elem(&lb_services, &sk);
	return s ? s->backend_id : 0;
}

#define SNAT_TRIES 16

static __always_inline int frontend(struct __sk_buff *skb, struct pkt *p)
{
	struct lb_svc_key fk = {};
	fk.addr = p->daddr;
	fk.port = p->dport;
	fk.proto = p->proto;
	fk.scope = LB_SCOPE_EXT;
	struct lb_svc_val *svc = bpf_map_lookup_elem(&lb_services, &fk);
	if (!svc)
		return TC_ACT_OK;
	if (svc->flags & LB_SVC_TWO_SCOPES) {
		__u32 ifindex = skb->ifindex;
		struct lb_iface *ifc = bpf_map_lookup_elem(&lb_ifaces, &ifindex);
		if (ifc && (ifc->flags & LB_IF_INTERNAL)) {
			fk.scope = LB_SCOPE_INT;
			svc = bpf_map_lookup_elem(&lb_services, &fk);
			if (!svc)
				return TC_ACT_OK;
		}
	}
	__u32 zero = 0;
	struct lb_config *cfg = bpf_map_lookup_elem(&lb_config, &zero);
	if (!cfg)
		return TC_ACT_OK;

	struct lb_ct_key ck = {};
	ck.saddr = p->saddr;
	ck.daddr = p->daddr;
	ck.sport = p->sport;
	ck.dport = p->dport;
	ck.proto = p->proto;
	ck.dir = LB_CT_FWD;

	struct lb_addr snat_addr = {};
	__u16 snat_port = 0, flags = 0;
	__u32 backend_id = 0;
	struct lb_backend *be = 0;

	struct lb_ct_val *fwd = ct_lookup(&ck);
	if (fwd) {
		/* An established flow keeps its backend while the backend exists (active,
		 * terminating, or no longer listed at all); a new SYN on a closed entry
		 * chooses again. */
		int reopen = p->proto == IPPROTO_TCP && (fwd->flags & LB_CT_CLOSING) &&
			     (p->tcp_flags & (TCP_FLAG_SYN_BYTE | TCP_FLAG_ACK_BYTE)) ==
				     TCP_FLAG_SYN_BYTE;
		__u32 id = fwd->backend_id;
		be = reopen ? 0 : bpf_map_lookup_elem(&lb_backends, &id);
		if (be) {
			ct_touch(fwd, p, 0);
			backend_id = id;
			flags = fwd->flags;
			snat_addr = fwd->nat_addr;
			snat_port = fwd->nat_port;
			stat_inc(LB_STAT_ESTABLISHED);
		}
	}

	if (!be) {
		if (svc->count == 0) {
			stat_inc(LB_STAT_NO_BACKEND);
			return TC_ACT_SHOT;
		}
		backend_id = select_backend(p, &fk, svc, cfg);
		be = backend_id ? bpf_map_lookup_elem(&lb_backends, &backend_id) : 0;
		if (!be) {
			stat_inc(LB_STAT_NO_BACKEND);
			return TC_ACT_SHOT;
		}
		int hairpin = addr_eq(&be->addr, &p->saddr);
		if ((svc->flags & LB_SVC_LOCAL) && !(be->flags & LB_BE_LOCAL) && !hairpin) {
			stat_inc(LB_STAT_NO_BACKEND);
			return TC_ACT_SHOT;
		}
		int snat = hairpin || (!(svc->flags & LB_SVC_LOCAL) && !(be->flags & LB_BE_LOCAL));
		__u32 now = now_secs();
		struct lb_ct_val rv = {};
		rv.nat_addr = p->saddr;
		rv.nat_port = p->sport;
		rv.rev_nat_id = svc->rev_nat_id;
		rv.backend_id = backend_id;
		rv.last_seen = now;
		rv.created = now;
		struct lb_ct_key rk = {};
		rk.saddr = be->addr;
		rk.sport = be->port;
		rk.proto = p->proto;
		rk.dir = LB_CT_REV;
		if (snat) {
			flags = LB_CT_SNAT | (hairpin ? LB_CT_HAIRPIN : 0);
			snat_addr = p->v6 ? cfg->snat_v6 : cfg->snat_v4;
			__u32 lo = cfg->snat_port_min, hi = cfg->snat_port_max;
			if (addr_zero(&snat_addr) || lo == 0 || hi < lo) {
				stat_inc(LB_STAT_SNAT_FAIL);
				return TC_ACT_SHOT;
			}
			rv.flags = flags;
			rk.daddr = snat_addr;
			int ok = 0;
			for (int i = 0; i < SNAT_TRIES; i++) {
				__u16 port = lo + bpf_get_prandom_u32() % (hi - lo + 1);
				rk.dport = bpf_htons(port);
				if (ct_update(&rk, &rv, BPF_NOEXIST) == 0) {
					snat_port = rk.dport;
					ok = 1;
					break;
				}
			}
			if (!ok) {
				stat_inc(LB_STAT_SNAT_FAIL);
				return TC_ACT_SHOT;
			}
		} else {
			rk.daddr = p->saddr;
			rk.dport = p->sport;
			if (ct_update(&rk, &rv, BPF_ANY) < 0)
				return TC_ACT_SHOT;
		}
		struct lb_ct_val fv = {};
		fv.nat_addr = snat_addr;
		fv.nat_port = snat_port;
		fv.rev_nat_id = svc->rev_nat_id;
		fv.backend_id = backend_id;
		fv.last_seen = now;
		fv.created = now;
		fv.flags = flags;
		if (p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FLAG_FIN_BYTE | TCP_FLAG_RST_BYTE)))
			fv.flags |= LB_CT_CLOSING;
		if (ct_update(&ck, &fv, BPF_ANY) < 0)
			return TC_ACT_SHOT;
		stat_inc(LB_STAT_TRANSLATED);
	}

	struct lb_addr baddr = be->addr;
	__u16 bport = be->port;
	struct lb_addr saddr = p->saddr;
	__u16 sport = p->sport;
	if (flags & LB_CT_SNAT) {
		saddr = snat_addr;
		sport = snat_port;
	}
	if (rewrite(skb, p, &saddr, sport, &baddr, bport) < 0)
		return TC_ACT_SHOT;
	return forward(skb, p);
}

/* The quoted packet inside an ICMP error. */
struct inner {
	__u32 off;       /* its L3 header */
	__u32 l4;        /* its L4 header */
	struct lb_addr saddr;
	struct lb_addr daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
};

static __always_inline int icmp_is_error(struct __sk_buff *skb, struct pkt *p)
{
	__u8 type;
	if (bpf_skb_load_bytes(skb, p->l4, &type, 1) < 0)
		return 0;
	if (!p->v6)
		return p->proto == IPPROTO_ICMP &&
		       (type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED);
	return p->proto == IPPROTO_ICMPV6 &&
	       (type == ICMPV6_DEST_UNREACH || type == ICMPV6_PKT_TOOBIG ||
		type == ICMPV6_TIME_EXCEED);
}

static __always_inline int parse_inner(struct __sk_buff *skb, struct pkt *p, struct inner *in)
{
	in->off = p->l4 + 8;
	if (!p->v6) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, in->off, &ip, sizeof(ip)) < 0 || ip.ihl < 5)
			return -1;
		addr_v4(&in->saddr, ip.saddr);
		addr_v4(&in->daddr, ip.daddr);
		in->proto = ip.protocol;
		in->l4 = in->off + ip.ihl * 4;
	} else {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, in->off, &ip6, sizeof(ip6)) < 0)
			return -1;
		__builtin_memcpy(&in->saddr, &ip6.saddr, 16);
		__builtin_memcpy(&in->daddr, &ip6.daddr, 16);
		in->proto = ip6.nexthdr;
		in->l4 = in->off + sizeof(struct ipv6hdr);
	}
	if (in->proto != IPPROTO_TCP && in->proto != IPPROTO_UDP)
		return -1;
	__u16 ports[2];
	if (bpf_skb_load_bytes(skb, in->l4, ports, sizeof(ports)) < 0)
		return -1;
	in->sport = ports[0];
	in->dport = ports[1];
	return 0;
}

/*
 * Rewrites the quoted packet of an ICMP error to (saddr, sport, daddr, dport) and the outer
 * destination to odaddr: the quoted IPv4 header checksum, the quoted TCP/UDP checksum when
 * it was quoted, the ICMP checksum (for ICMPv6 with its pseudo-header) and the outer IPv4
 * header checksum, all incrementally.
 */
static __always_inline int icmp_rewrite(struct __sk_buff *skb, struct pkt *p, struct inner *in,
					const struct lb_addr *saddr, __u16 sport,
					const struct lb_addr *daddr, __u16 dport,
					const struct lb_addr *odaddr)
{
	__u32 diff = 0;
	__u32 l4diff;
	__u16 oports[2] = {in->sport, in->dport}, nports[2] = {sport, dport};
	__u32 pdiff = bpf_csum_diff((__be32 *)oports, 4, (__be32 *)nports, 4, 0);

	if (!p->v6) {
		__u32 oa[2] = {in->saddr.w[3], in->daddr.w[3]};
		__u32 na[2] = {saddr->w[3], daddr->w[3]};
		__u32 adiff = bpf_csum_diff(oa, 8, na, 8, 0);
		/* Quoted IPv4 header: its checksum covers its addresses. */
		__u32 hw_off = in->off + 8; /* ttl, protocol, checksum */
		__u32 ow, nw;
		if (bpf_skb_load_bytes(skb, hw_off, &ow, 4) < 0)
			return -1;
		/* ttl, protocol, then the checksum: the high 16 bits on this little-endian target. */
		nw = (ow & 0xffff) | ((__u32)csum_apply((__u16)(ow >> 16), adiff) << 16);
		diff = csum_add(diff, adiff);
		diff = csum_add(diff, bpf_csum_diff(&ow, 4, &nw, 4, 0));
		if (bpf_skb_store_bytes(skb, hw_off, &nw, 4, BPF_F_RECOMPUTE_CSUM) < 0 ||
		    bpf_skb_store_bytes(skb, in->off + 12, na, 8, BPF_F_RECOMPUTE_CSUM) < 0)
			return -1;
		l4diff = csum_add(adiff, pdiff);
	} else {
		__u32 oa[8], na[8];
		__builtin_memcpy(oa, in->saddr.w, 16);
		__builtin_memcpy(oa + 4, in->daddr.w, 16);
		__builtin_memcpy(na, saddr->w, 16);
		__builtin_memcpy(na + 4, daddr->w, 16);
		__u32 adiff = bpf_csum_diff(oa, 32, na, 32, 0);
		diff = csum_add(diff, adiff);
		if (bpf_skb_store_bytes(skb, in->off + 8, na, 32, BPF_F_RECOMPUTE_CSUM) < 0)
			return -1;
		l4diff = csum_add(adiff, pdiff);
	}

	/* Quoted TCP/UDP checksum, when the error quotes it (its pseudo-header changed). */
	__u32 cw_off = in->proto == IPPROTO_TCP ? in->l4 + 16 : in->l4 + 4;
	__u32 ow, nw;
	if (bpf_skb_load_bytes(skb, cw_off, &ow, 4) == 0) {
		/* The checksum is the first half of TCP's word, the second of UDP's (the
		 * target is little-endian: the first half is the low 16 bits). */
		int tcp = in->proto == IPPROTO_TCP;
		__u16 oc = tcp ? (__u16)(ow & 0xffff) : (__u16)(ow >> 16);
		if (tcp || oc != 0) {
			__u16 c = csum_apply(oc, l4diff);
			if (!tcp && c == 0)
				c = 0xffff;
			nw = tcp ? (ow & 0xffff0000) | c : (ow & 0xffff) | ((__u32)c << 16);
			diff = csum_add(diff, bpf_csum_diff(&ow, 4, &nw, 4, 0));
			if (bpf_skb_store_bytes(skb, cw_off, &nw, 4, BPF_F_RECOMPUTE_CSUM) < 0)
				return -1;
		}
	}
	diff = csum_add(diff, pdiff);
	if (bpf_skb_store_bytes(skb, in->l4, nports, 4, BPF_F_RECOMPUTE_CSUM) < 0)
		return -1;

	/* Outer destination. */
	if (!addr_eq(&p->daddr, odaddr)) {
		if (!p->v6) {
			__u32 o = p->daddr.w[3], n = odaddr->w[3];
			if (bpf_l3_csum_replace(skb, p->l3 + offsetof(struct iphdr, check), o, n, 4) < 0 ||
			    bpf_skb_store_bytes(skb, p->l3 + offsetof(struct iphdr, daddr), &n, 4, 0) < 0)
				return -1;
		} else {
			/* ICMPv6's checksum covers the outer addresses. */
			diff = csum_add(diff, bpf_csum_diff(p->daddr.w, 16, (__be32 *)odaddr->w, 16, 0));
			if (bpf_skb_store_bytes(skb, p->l3 + offsetof(struct ipv6hdr, daddr),
						odaddr->w, 16, 0) < 0)
				return -1;
		}
		p->daddr = *odaddr;
	}

	__u16 icsum;
	__u32 icsum_off = p->l4 + 2;
	if (bpf_skb_load_bytes(skb, icsum_off, &icsum, 2) < 0)
		return -1;
	icsum = csum_apply(icsum, diff);
	if (bpf_skb_store_bytes(skb, icsum_off, &icsum, 2, BPF_F_RECOMPUTE_CSUM) < 0)
		return -1;
	return 0;
}

/* An ICMP error about a packet of a translated flow, translated the way its packet was. */
static __always_inline int icmp_error(struct __sk_buff *skb, struct pkt *p, int ingress)
{
	if (!icmp_is_error(skb, p))
		return TC_ACT_OK;
	struct inner in = {};
	if (parse_inner(skb, p, &in) < 0)
		return TC_ACT_OK;

	/* The quoted packet was one we sent towards a backend: its reversal is a REV key. */
	struct lb_ct_key k = {};
	k.saddr = in.daddr;
	k.daddr = in.saddr;
	k.sport = in.dport;
	k.dport = in.sport;
	k.proto = in.proto;
	k.dir = LB_CT_REV;
	struct lb_ct_val *rev = ct_lookup(&k);
	if (rev) {
		__u16 id = rev->rev_nat_id;
		struct lb_rev_nat *rn = bpf_map_lookup_elem(&lb_rev_nat, &id);
		if (!rn)
			return TC_ACT_OK;
		struct lb_addr client = rev->nat_addr, vip = rn->addr;
		__u16 cport = rev->nat_port, vport = rn->port;
		struct lb_addr odaddr = (rev->flags & LB_CT_SNAT) ? client : p->daddr;
		if (icmp_rewrite(skb, p, &in, &client, cport, &vip, vport, &odaddr) < 0)
			return TC_ACT_SHOT;
		stat_inc(LB_STAT_ICMP);
		return ingress ? forward(skb, p) : TC_ACT_OK;
	}

	/* The quoted packet was a reply we sent to a client: its reversal is a FWD key. */
	k.dir = LB_CT_FWD;
	struct lb_ct_val *fwd = ct_lookup(&k);
	if (fwd) {
		__u32 id = fwd->backend_id;
		struct lb_backend *be = bpf_map_lookup_elem(&lb_backends, &id);
		if (!be)
			return TC_ACT_OK;
		struct lb_addr baddr = be->addr, dst = in.daddr;
		__u16 bport = be->port, dport = in.dport;
		if (fwd->flags & LB_CT_SNAT) {
			dst = fwd->nat_addr;
			dport = fwd->nat_port;
		}
		if (icmp_rewrite(skb, p, &in, &baddr, bport, &dst, dport, &baddr) < 0)
			return TC_ACT_SHOT;
		stat_inc(LB_STAT_ICMP);
		return ingress ? forward(skb, p) : TC_ACT_OK;
	}
	return TC_ACT_OK;
}

static __always_inline int handle(struct __sk_buff *skb, int ingress)
{
	struct pkt p = {};
	int r = parse(skb, &p);
	if (r == -2) {
		/* Only counted: a fragment carries no ports to find its frontend by. */
		stat_inc(LB_STAT_FRAGMENT);
		return TC_ACT_OK;
	}
	if (r < 0)
		return TC_ACT_OK;
	if (p.proto == IPPROTO_ICMP || p.proto == IPPROTO_ICMPV6)
		return icmp_error(skb, &p, ingress);

	struct lb_ct_key rk = {};
	rk.saddr = p.saddr;
	rk.daddr = p.daddr;
	rk.sport = p.sport;
	rk.dport = p.dport;
	rk.proto = p.proto;
	rk.dir = LB_CT_REV;
	struct lb_ct_val *rev = ct_lookup(&rk);
	if (rev)
		return reverse(skb, &p, rev, ingress);
	if (!ingress)
		return TC_ACT_OK;
	return frontend(skb, &p);
}

SEC("classifier")
int lb_ingress(struct __sk_buff *skb)
{
	return handle(skb, 1);
}

SEC("classifier")
int lb_egress(struct __sk_buff *skb)
{
	return handle(skb, 0);
}

/* bpf_fib_lookup is a GPL-only helper: the object is offered under GPL-2.0 as well. */
char _license[] SEC("license") = "GPL";
