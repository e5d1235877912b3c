#version 450
// Causal attention over a KV cache, one workgroup per (query head, row). Row r sits at position
// row_pos(r) of its sequence and attends to its positions 0 ..= row_pos(r), position j at
// cache row kv_row(r, j) (the sequence's KV pages, see STEP_STATE in common.glsl). Grouped-query: head h reads KV
// head h / (heads / kv_heads). Keys are scored a workgroup-width chunk at a time with an online
// softmax (running max and sum), so any sequence length works; invocation t accumulates output
// dims t, t + n, ... (head_dim <= 4 * workgroup size).
// SUBGROUP_ONLY 1 (CPU devices): the workgroup is one subgroup; q is read in place, the
// probabilities reach every invocation by subgroupShuffle, no shared memory and no barrier
// (head_dim <= 32 * subgroup size).
// READ_TEXEL 1 (CPU devices, see KernelConfig.swift's ReadPath): q, K and V read through R32G32B32A32_UINT
// texel views, 4 floats per fetch (head_dim and the KV row a multiple of 4; q_base/k_base/
// v_base: float index of the data in each view). The workgroup is one subgroup; the keys are
// split across its invocations, each with its own online softmax, merged at the end (split-KV
// within the workgroup). On lavapipe storage-buffer loads run at ~1 GB/s, which made attention
// over a long cache cost more than all the weights of a pass.
// READ_TEXEL 1 and LANE_ROWS N (several rows, prefill): each invocation owns N rows instead.
// READ_TEXEL 1 and LANE_HEADS 1 (one row, decode): each invocation owns a head and all its keys.
// SPLIT 1 (storage buffers, workgroup reductions: GPUs; decode): flash-decoding. The keys are
// split across gl_NumWorkGroups.z workgroups per head, each writing its partial softmax state
// to Out (a scratch buffer); attention_combine.comp merges them. A decode token on a long
// context then keeps many workgroups busy instead of one per head.
// Workgroup reductions (not SUBGROUP_ONLY, storage buffers): clusters of KEY_LANES lanes read
// each key row's contiguous slices; see the layout note above that kernel below.
#include "common.glsl"
#ifndef READ_TEXEL
#define READ_TEXEL 0
#endif
#ifndef SPLIT
#define SPLIT 0
#endif
#if SUBGROUP_ONLY || READ_TEXEL
#extension GL_KHR_shader_subgroup_shuffle : require
#endif

layout(std430, binding = 3) writeonly buffer Out { float o[]; };
STEP_STATE(4)

layout(push_constant) uniform P {
    uint heads; uint kv_heads; uint head_dim; uint q_stride;
    uint q_col; uint o_stride; uint o_col; uint kv_width;
    float scale; uint q_base; uint k_base; uint v_base;
} p;

const uint MAX_D = 256u;

#if READ_TEXEL

layout(binding = 0) uniform usamplerBuffer Qt;
layout(binding = 1) uniform usamplerBuffer Kt;
layout(binding = 2) uniform usamplerBuffer Vt;
#define LD4(b, i) uintBitsToFloat(texelFetch(b, int((i) >> 2u)))
// K and V (the cache, KV_T): KV_LD4 from common.glsl.
#define LDK(i) KV_LD4(Kt, i)
#define LDV(i) KV_LD4(Vt, i)
#ifndef LANE_ROWS
#define LANE_ROWS 0
#endif
#ifndef LANE_HEADS
#define LANE_HEADS 0
#endif
#ifndef NT
#define NT 16u                                      // texels per head (head_dim / 4), set by the host
#endif

// One key of an online softmax: score it against q (already scaled), fold it into the running
// max m, sum l and output acc. kj, vj: float index of the key's K and V rows in their views.
void key_step(vec4 qv[NT], inout vec4 acc[NT], inout float m, inout float l, uint kj, uint vj) {
    float s = 0.0;
    for (uint c = 0u; c < NT; c++) s += dot(qv[c], LDK(kj + 4u * c));
    float mnew = max(m, s);
    float corr = exp(m - mnew);
    float e = exp(s - mnew);
    l = l * corr + e;
    m = mnew;
    for (uint c = 0u; c < NT; c++) acc[c] = acc[c] * corr + e * LDV(vj + 4u * c);
}

void store4(uint oi, vec4 y) { o[oi] = y.x; o[oi + 1u] = y.y; o[oi + 2u] = y.z; o[oi + 3u] = y.w; }

#if LANE_ROWS

// Several rows (prefill), LANE_ROWS per invocation: invocation t owns rows r0 + t + n * i of a
// group of LANE_ROWS * n, each with its own online softmax over its keys 0 ..= its position.
// All invocations read the same key at a time, so there is nothing to merge (no subgroup
// operation at all), and each K and V texel fetched serves all of an invocation's rows (a row
// stops at its own position: later keys only update the rows after it).
#define RPL LANE_ROWS
void main() {
    uint h = gl_WorkGroupID.x;
    uint n = gl_WorkGroupSize.x;
    uint r0 = gl_WorkGroupID.y * RPL * n + gl_LocalInvocationID.x;
    uint kvh = h / (p.heads / p.kv_heads);
    uint kb = p.k_base + kvh * p.head_dim;
    uint vb = p.v_base + kvh * p.head_dim;
    vec4 q[RPL][NT], acc[RPL][NT];
    float m[RPL], l[RPL];
    uint len[RPL];
    for (uint i = 0u; i < RPL; i++) {
        uint rr = min(r0 + n * i, step_rows - 1u);   // past the end: the last row, stored nowhere
        len[i] = row_pos(rr) + 1u;
        uint qb = p.q_base + rr * p.q_stride + p.q_col + h * p.head_dim;
        for (uint c = 0u; c < NT; c++) { q[i][c] = LD4(Qt, qb + 4u * c) * p.scale; acc[i][c] = vec4(0.0); }
        m[i] = -1.0 / 0.0;
        l[i] = 0.0;
    }
    // The rows of a LANE_ROWS call are one sequence's consecutive positions: one page table.
    uint r_seq = min(r0, step_rows - 1u);
    for (uint j = 0u; j < len[RPL - 1u]; j++) {
        uint cr_j = kv_row(r_seq, j) * p.kv_width;
        uint kj = kb + cr_j, vj = vb + cr_j;
        float sc[RPL];
        for (uint i = 0u; i < RPL; i++) sc[i] = 0.0;
        for (uint c = 0u; c < NT; c++) {
            vec4 k = LDK(kj + 4u * c);
            for (uint i = 0u; i < RPL; i++) sc[i] += dot(q[i][c], k);
        }
        float cr[RPL], e[RPL];
        for (uint i = 0u; i < RPL; i++) {
            bool use = j < len[i];
            float mn = use ? max(m[i], sc[i]) : m[i];
            cr[i] = exp(m[i] - mn);
            e[i] = use ? exp(sc[i] - mn) : 0.0;
            l[i] = l[i] * cr[i] + e[i];
            m[i] = mn;
        }
        for (uint c = 0u; c < NT; c++) {
            vec4 v = LDV(vj + 4u * c);
            for (uint i = 0u; i < RPL; i++) acc[i][c] = acc[i][c] * cr[i] + e[i] * v;
        }
    }
    for (uint i = 0u; i < RPL; i++) {
        uint r = r0 + n * i;
        if (r >= step_rows) break;
        uint ob = r * p.o_stride + p.o_col + h * p.head_dim;
        for (uint c = 0u; c < NT; c++) store4(ob + 4u * c, acc[i][c] / l[i]);
    }
}

#elif LANE_HEADS

// One row (decode), LANE_HEADS 1: invocation t owns query head gl_WorkGroupID.x * n + t and
// walks all of its keys with its own online softmax, so the workgroup reads each key's K and V
// for n heads side by side (one contiguous run of the cache row) instead of n positions 4 KB+
// apart, and merges nothing.
void main() {
    uint n = gl_WorkGroupSize.x;
    uint h = gl_WorkGroupID.x * n + gl_LocalInvocationID.x;
    uint hh = min(h, p.heads - 1u);
    uint r = gl_WorkGroupID.y;
    uint kvh = hh / (p.heads / p.kv_heads);
    uint len = row_pos(r) + 1u;
    uint qb = p.q_base + r * p.q_stride + p.q_col + hh * p.head_dim;
    uint kb = p.k_base + kvh * p.head_dim;
    uint vb = p.v_base + kvh * p.head_dim;
    vec4 qv[NT], acc[NT];
    for (uint c = 0u; c < NT; c++) { qv[c] = LD4(Qt, qb + 4u * c) * p.scale; acc[c] = vec4(0.0); }
    float m = -1.0 / 0.0;
    float l = 0.0;
    for (uint j = 0u; j < len; j++) { uint cr_j = kv_row(r, j) * p.kv_width; key_step(qv, acc, m, l, kb + cr_j, vb + cr_j); }
    if (h >= p.heads) return;
    uint ob = r * p.o_stride + p.o_col + h * p.head_dim;
    for (uint c = 0u; c < NT; c++) store4(ob + 4u * c, acc[c] / l);
}

#else

void main() {
    uint h = gl_WorkGroupID.x;
    uint r = gl_WorkGroupID.y;
    uint t = gl_LocalInvocationID.x;
    uint n = gl_WorkGroupSize.x;
    uint kvh = h / (p.heads / p.kv_heads);
    uint len = row_pos(r) + 1u;
    uint qb = p.q_base + r * p.q_stride + p.q_col + h * p.head_dim;
    uint kb = p.k_base + kvh * p.head_dim;
    uint vb = p.v_base + kvh * p.head_dim;
    // Every invocation holds all of q and walks its own keys t, t + n, ... with its own online
    // softmax (running max m, sum l, output acc); the invocations' states are merged once at
    // the end. No subgroup operation per key: on lavapipe each one costs about as much as a
    // key's worth of arithmetic.
    vec4 qv[NT], acc[NT];
    for (uint c = 0u; c < NT; c++) { qv[c] = LD4(Qt, qb + 4u * c) * p.scale; acc[c] = vec4(0.0); }
    float m = -1.0 / 0.0;
    float l = 0.0;
    for (uint j = t; j < len; j += n) { uint cr_j = kv_row(r, j) * p.kv_width; key_step(qv, acc, m, l, kb + cr_j, vb + cr_j); }
    // Merge: invocations without a key (m = -inf) contribute exp(-inf) = 0.
    float mall = subgroupMax(m);
    float f = exp(m - mall);
    float lall = subgroupAdd(l * f);
    uint ob = r * p.o_stride + p.o_col + h * p.head_dim;
    for (uint c = 0u; c < NT; c++) {
        vec4 y = subgroupAdd(acc[c] * f) / lall;
        if (c % n == t) store4(ob + 4u * c, y);
    }
}

#endif  // LANE_ROWS

#else

#if SUBGROUP_ONLY

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { KV_T kc[]; };
layout(std430, binding = 2) readonly buffer V { KV_T vc[]; };

void main() {
    uint h = gl_WorkGroupID.x;
    uint r = gl_WorkGroupID.y;
    uint t = gl_LocalInvocationID.x;
    uint n = gl_WorkGroupSize.x;
    uint kvh = h / (p.heads / p.kv_heads);
    uint len = row_pos(r) + 1u;
    uint qb = r * p.q_stride + p.q_col + h * p.head_dim;
    uint cpl = (p.head_dim + n - 1u) / n;     // output dims per invocation
    float m = -1.0 / 0.0;
    float l = 0.0;
    float acc[32];
    for (uint c = 0u; c < 32u; c++) acc[c] = 0.0;
    for (uint j0 = 0u; j0 < len; j0 += n) {
        uint j = j0 + t;
        float s = -1.0 / 0.0;
        if (j < len) {
            uint kb = kv_row(r, j) * p.kv_width + kvh * p.head_dim;
            float dot = 0.0;
            for (uint d = 0u; d < p.head_dim; d++) dot += q[qb + d] * float(kc[kb + d]);
            s = dot * p.scale;
        }
        float mnew = max(m, subgroupMax(s));
        float e = (j < len) ? exp(s - mnew) : 0.0;
        float corr = exp(m - mnew);
        l = l * corr + subgroupAdd(e);
        m = mnew;
        for (uint c = 0u; c < cpl; c++) acc[c] *= corr;
        uint cnt = min(n, len - j0);
        for (uint jj = 0u; jj < cnt; jj++) {
            float pj = subgroupShuffle(e, jj);
            uint vb = kv_row(r, j0 + jj) * p.kv_width + kvh * p.head_dim;
            for (uint c = 0u; c < cpl; c++) {
                uint d = t + c * n;
                if (d < p.head_dim) acc[c] += pj * float(vc[vb + d]);
            }
        }
    }
    uint ob = r * p.o_stride + p.o_col + h * p.head_dim;
    for (uint c = 0u; c < cpl; c++) {
        uint d = t + c * n;
        if (d < p.head_dim) o[ob + d] = acc[c] / l;
    }
}

#else

// The storage kernel for GPUs (workgroup reductions; SPLIT for decode). Memory layout: the
// workgroup's N invocations form N / KEY_LANES clusters of KEY_LANES consecutive lanes of one
// subgroup (KEY_LANES <= the subgroup size, a power of 2, set by the host). A cluster scores one
// key at a time: the key row (head_dim values, contiguous in the cache) is read as slices of
// VEC values (a vec4 / f16vec4 when head_dim and the KV row are multiples of 4, else one value),
// lane i of the cluster reading slices i, i + KEY_LANES, ...: consecutive lanes read consecutive
// addresses of the row, so each load instruction of a subgroup reads KEY_LANES * 16 contiguous
// bytes per key (f32, VEC 4). The dot product's partials are summed by subgroupClusteredAdd;
// the V row is read with the same layout, each lane accumulating its own slices. The clusters
// walk keys jb + c, jb + c + N / KEY_LANES, ... each with its own online softmax (running max m,
// sum l, acc), merged once at the end through shared memory. KEY_SLICES: slices per lane
// (ceil(head_dim / VEC / KEY_LANES)); WG_N: the workgroup size; MERGE_CLUSTERS: clusters merged
// per round through shared memory (bounds it at MERGE_CLUSTERS * KEY_LANES * KEY_SLICES slices).
#ifndef KEY_LANES
#define KEY_LANES 8
#endif
#ifndef KEY_SLICES
#define KEY_SLICES 8
#endif
#ifndef VEC
#define VEC 4
#endif
#ifndef WG_N
#define WG_N 64u
#endif
#ifndef SPLIT_MIN_KEYS
#define SPLIT_MIN_KEYS 64u
#endif
#ifndef CLUSTERED
#define CLUSTERED 0
#endif
#ifndef MERGE_CLUSTERS
#define MERGE_CLUSTERS 8
#endif
#if KEY_LANES > 1 && CLUSTERED
#extension GL_KHR_shader_subgroup_clustered : require
#elif KEY_LANES > 1
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
// Sum over a cluster (every lane gets it): subgroupClusteredAdd where the device has clustered
// operations (CLUSTERED 1), else a butterfly of subgroupShuffleXor within the cluster's lanes.
float cluster_sum(float v) {
#if KEY_LANES > 1 && CLUSTERED
    return subgroupClusteredAdd(v, KEY_LANES);
#elif KEY_LANES > 1
    for (uint w = KEY_LANES / 2u; w > 0u; w >>= 1u) v += subgroupShuffleXor(v, w);
    return v;
#else
    return v;
#endif
}
#if VEC == 4
layout(std430, binding = 1) readonly buffer K { KV_T4 kc[]; };
layout(std430, binding = 2) readonly buffer V { KV_T4 vc[]; };
#define SL vec4
#else
layout(std430, binding = 1) readonly buffer K { KV_T kc[]; };
layout(std430, binding = 2) readonly buffer V { KV_T vc[]; };
#define SL float
#endif
layout(std430, binding = 0) readonly buffer Q { float q[]; };

SL load_q(uint i) {
#if VEC == 4
    return vec4(q[i], q[i + 1u], q[i + 2u], q[i + 3u]);
#else
    return q[i];
#endif
}
void store_sl(uint i, SL y) {
#if VEC == 4
    o[i] = y.x; o[i + 1u] = y.y; o[i + 2u] = y.z; o[i + 3u] = y.w;
#else
    o[i] = y;
#endif
}

const uint NCL = WG_N / KEY_LANES;                 // clusters per workgroup
const uint OUT_SLICES = (MAX_D / VEC + WG_N - 1u) / WG_N;  // output slices per invocation in the merge
shared float cl_m[NCL];
shared float cl_l[NCL];
shared SL cl_acc[MERGE_CLUSTERS * KEY_LANES * KEY_SLICES];   // cluster c of a round: slice s at (c % MERGE_CLUSTERS) * KEY_LANES * KEY_SLICES + s

void main() {
    uint h = gl_WorkGroupID.x;
    uint r = gl_WorkGroupID.y;
    uint t = gl_LocalInvocationIndex;
    uint kvh = h / (p.heads / p.kv_heads);
    uint len = row_pos(r) + 1u;
    uint nsl = p.head_dim / VEC;                   // slices per head row
    // Cluster and lane from the subgroup ids, so a cluster is KEY_LANES lanes of one subgroup
    // whatever the mapping of invocations to subgroups.
    uint cl = gl_SubgroupID * (gl_SubgroupSize / KEY_LANES) + gl_SubgroupInvocationID / KEY_LANES;
    uint lane = gl_SubgroupInvocationID % KEY_LANES;
#if SPLIT
    // Flash-decoding: split z of gl_NumWorkGroups.z takes an equal share of the keys (at least
    // SPLIT_MIN_KEYS). Splits past the current position are empty: they write m = -inf, l = 0
    // and stop before reading anything else (attention_combine.comp skips them).
    uint ns = gl_NumWorkGroups.z;
    uint chunk = max((len + ns - 1u) / ns, SPLIT_MIN_KEYS);
    uint jb = min(len, gl_WorkGroupID.z * chunk), je = min(len, jb + chunk);
    uint pb = ((r * p.heads + h) * ns + gl_WorkGroupID.z) * (p.head_dim + 2u);
    if (jb == je) {
        if (t == 0u) { o[pb] = -1.0 / 0.0; o[pb + 1u] = 0.0; }
        return;
    }
#else
    uint jb = 0u, je = len;
#endif
    uint qb = r * p.q_stride + p.q_col + h * p.head_dim;
    SL qv[KEY_SLICES], acc[KEY_SLICES];
    for (uint i = 0u; i < KEY_SLICES; i++) {
        uint c = lane + KEY_LANES * i;
        qv[i] = c < nsl ? load_q(qb + c * VEC) * p.scale : SL(0.0);
        acc[i] = SL(0.0);
    }
    float m = -1.0 / 0.0;   // running max
    float l = 0.0;           // running sum of exp
    uint rw = p.kv_width / VEC, hb = kvh * nsl;    // the cache row and this KV head's offset, in slices
    // Every cluster runs the same number of steps (the last ones may have no key) so the
    // clustered add stays in uniform control flow.
    uint steps = (je - jb + NCL - 1u) / NCL;
    for (uint it = 0u; it < steps; it++) {
        uint j = jb + it * NCL + cl;
        bool valid = j < je;
        uint kb = valid ? kv_row(r, j) * rw + hb : 0u;
        float part = 0.0;
        if (valid) {
            for (uint i = 0u; i < KEY_SLICES; i++) {
                uint c = lane + KEY_LANES * i;
                if (c < nsl) part += dot(qv[i], SL(kc[kb + c]));
            }
        }
        float s = cluster_sum(part);
        if (valid) {
            float mnew = max(m, s);
            float corr = exp(m - mnew);
            float e = exp(s - mnew);
            l = l * corr + e;
            m = mnew;
            for (uint i = 0u; i < KEY_SLICES; i++) {
                uint c = lane + KEY_LANES * i;
                if (c < nsl) acc[i] = acc[i] * corr + e * SL(vc[kb + c]);
            }
        }
    }
    // Merge the clusters: M = max m_c, L = sum l_c exp(m_c - M), acc = sum acc_c exp(m_c - M).
    // A cluster without a key has m = -inf and weighs 0 (every workgroup here has a key).
    if (lane == 0u) { cl_m[cl] = m; cl_l[cl] = l; }
    barrier();
    float mall = -1.0 / 0.0;
    for (uint c = 0u; c < NCL; c++) mall = max(mall, cl_m[c]);
    float lall = 0.0;
    for (uint c = 0u; c < NCL; c++) lall += cl_l[c] * exp(cl_m[c] - mall);
    // The accs, MERGE_CLUSTERS clusters per round: invocation t sums output slices t, t + WG_N, ...
    SL a[OUT_SLICES];
    for (uint k = 0u; k < OUT_SLICES; k++) a[k] = SL(0.0);
    for (uint c0 = 0u; c0 < NCL; c0 += MERGE_CLUSTERS) {
        if (cl >= c0 && cl < c0 + MERGE_CLUSTERS) {
            float f = exp(m - mall);
            for (uint i = 0u; i < KEY_SLICES; i++) cl_acc[(cl - c0) * KEY_LANES * KEY_SLICES + lane + KEY_LANES * i] = acc[i] * f;
        }
        barrier();
        for (uint k = 0u; k < OUT_SLICES; k++) {
            uint sl = t + k * WG_N;
            if (sl < nsl) for (uint c = 0u; c < min(MERGE_CLUSTERS, NCL - c0); c++) a[k] += cl_acc[c * KEY_LANES * KEY_SLICES + sl];
        }
        barrier();
    }
#if SPLIT
    // The split's unnormalised state (m, l, acc[head_dim]) for attention_combine.comp.
    if (t == 0u) { o[pb] = mall; o[pb + 1u] = lall; }
    uint ob = pb + 2u;
    float inv = 1.0;
#else
    uint ob = r * p.o_stride + p.o_col + h * p.head_dim;
    float inv = 1.0 / lall;
#endif
    for (uint k = 0u; k < OUT_SLICES; k++) {
        uint sl = t + k * WG_N;
        if (sl < nsl) store_sl(ob + sl * VEC, a[k] * inv);
    }
}

#endif

#endif  // READ_TEXEL
