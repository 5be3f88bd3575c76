/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * The fence map, shared by the private-IP policy (private_ip.bpf.c) and the traffic counters
 * (net_traffic.bpf.c): both objects pin it at the same path, so it is one map in the kernel.
 * Written only by root from userspace (cgroup-core/src/private_ip/fence.rs); see
 * private_ip.bpf.c for who is confined.
 */
#ifndef PCG_FENCE_H
#define PCG_FENCE_H

/* Values of struct fence.kind. */
#define KIND_FENCE 1
#define KIND_USERS 2
/* The tree root, keyed by its cgroup id: all six programs are attached there (written by
 * cgroupctl init for the PAM module's check; no program looks at the root's depth). */
#define KIND_ROOT 3

/*
 * One entry. The first two fields are the layout of 0.2 (8 bytes); uid was appended for the
 * traffic counters, so a new writer still fills an old map correctly (the kernel copies only
 * the map's value size), and `cgroupctl init` replaces an old map by a new one.
 */
struct fence {
	__u32 ip4;  /* the user's private address, network order; 0: none */
	__u32 kind; /* KIND_FENCE or KIND_USERS */
	__u32 uid;  /* the fence's user (KIND_FENCE); the traffic counters' key */
};

/*
 * Keyed by cgroup id (the cgroup directory's inode number). No preallocation: root writes it
 * from userspace only, the programs only look up. 2^20 users is far more than one host holds.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 20);
	__type(key, __u64);
	__type(value, struct fence);
} pcg_fences SEC(".maps");

#endif
