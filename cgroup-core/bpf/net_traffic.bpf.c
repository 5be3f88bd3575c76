// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * pam_cgroup traffic accounting: two cgroup_skb programs (ingress, egress) attached at the
 * tree root next to the private-IP programs, counting the bytes and packets of every socket
 * whose cgroup is below a customer's fence users/<user>, whatever sub-cgroup it is in.
 *
 * Attribution: the kernel runs cgroup_skb programs for the cgroup of the socket (the one its
 * creating process was in), and bpf_skb_ancestor_cgroup_id(skb, fence_level) gives that
 * cgroup's ancestor at the depth of users/<user>. The fence map (fence.h, shared with the
 * private-IP policy and filled by root at every login) says whose fence that is. Sockets
 * outside users/ (root, the reverse proxy, unconfined/) and under a fence not registered yet
 * are not counted.
 *
 * Key: the fence's uid, not its cgroup id, so a user's counters continue when users/<user> is
 * removed and made again (a new cgroup id), and Prometheus sees one monotonic series per user.
 * The map is pinned, so the counts outlive cgroupctl and the daemon; they restart from 0 only
 * when the map goes (cgroupctl deinit, or a reboot: bpffs is memory).
 *
 * What is counted, per direction (receive = ingress, transmit = egress) and scope:
 *   - bytes: skb->len as the hooks see it, the IP packet (IP header, transport header and
 *     payload; no link-layer header). A GSO/GRO packet is one skb with one set of headers;
 *   - packets: its segment count (gso_segs, 1 when not GSO), i.e. the packets on the wire;
 *   - scope: "loopback" when the skb goes through (egress) or came from (ingress) a loopback
 *     device (ifindex 1 in every network namespace), i.e. traffic that never leaves the
 *     host's namespace; "external" otherwise.
 * IPv4 and IPv6 alike (one hook pair sees both). The programs never drop anything: they
 * return 1 (pass) always.
 *
 * Per-CPU counters, updated with atomic adds: no cache line is shared between CPUs, and a
 * softirq (ingress) interrupting a process-context update (egress) on the same CPU cannot
 * lose a count. Userspace sums the CPUs.
 *
 * Kernel: bpf_skb_ancestor_cgroup_id is offered to cgroup_skb programs since 4.19; cgroup_skb
 * runs with skb->sk set to the receiving socket on ingress. Debian 12's 6.1 has both.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "fence.h"

#define LOOPBACK_IFINDEX 1

/* Index of struct traffic's arrays. */
#define DIR_RECEIVE 0
#define DIR_TRANSMIT 1
#define SCOPE_LOOPBACK 0
#define SCOPE_EXTERNAL 1

struct traffic {
	__u64 bytes[2][2];   /* [direction][scope] */
	__u64 packets[2][2]; /* [direction][scope] */
};

/*
 * Keyed by uid. Entries are made by the programs on a user's first packet and never removed
 * but with the map (a few dozen bytes per user and CPU). 2^16 users per host is plenty; a
 * user beyond that is not counted (the update fails), never blocked.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 16);
	__type(key, __u32);
	__type(value, struct traffic);
} pcg_traffic SEC(".maps");

/* Depth of users/<user> in the cgroup2 hierarchy (its root cgroup is at 0), set at load. */
const volatile __u32 fence_level = 3;

static __always_inline void count(struct __sk_buff *skb, int dir)
{
	struct traffic zero = {};
	struct traffic *t;
	struct fence *f;
	__u32 uid, segs;
	__u64 id;
	int scope;

	id = bpf_skb_ancestor_cgroup_id(skb, fence_level);
	f = id ? bpf_map_lookup_elem(&pcg_fences, &id) : 0;
	if (!f || f->kind != KIND_FENCE)
		return;
	uid = f->uid;
	t = bpf_map_lookup_elem(&pcg_traffic, &uid);
	if (!t) {
		/* BPF_NOEXIST: a racing first packet on another CPU may have made it already. */
		bpf_map_update_elem(&pcg_traffic, &uid, &zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&pcg_traffic, &uid);
		if (!t)
			return;
	}
	scope = skb->ifindex == LOOPBACK_IFINDEX ? SCOPE_LOOPBACK : SCOPE_EXTERNAL;
	segs = skb->gso_segs ? skb->gso_segs : 1;
	__sync_fetch_and_add(&t->bytes[dir][scope], skb->len);
	__sync_fetch_and_add(&t->packets[dir][scope], segs);
}

SEC("cgroup_skb/ingress")
int pcg_ingress(struct __sk_buff *skb)
{
	count(skb, DIR_RECEIVE);
	return 1;
}

SEC("cgroup_skb/egress")
int pcg_egress(struct __sk_buff *skb)
{
	count(skb, DIR_TRANSMIT);
	return 1;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
