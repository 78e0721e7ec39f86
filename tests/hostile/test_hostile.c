/* The hostile-value corpus: every tool that loads a model, given a well-formed checkpoint holding
 * one bad value or one bad config value, must refuse it cleanly (docs/DESIGN: "Bad input includes
 * bad values in well-formed files (NaN, Inf, absurd magnitudes in any tensor): refused at load
 * with the tensor named, never a crash, and the gate fails them with or without a source").
 *
 * usage: test_hostile MKFIXTURE QUANTIZE RUN EVAL VERIFY TOKENIZER_JSON [DEVICE]
 * With DEVICE (e.g. cuda) only the runtime's cells run (mimo-run, mimo-eval), on that device: a
 * backend that uploads weights checks them itself, and must name the same rules. There the
 * 1025-expert cells may also pass by a refusal naming n_routed_experts (a kernel limit).
 *
 * Fixtures, made here with the tools themselves: the tiny BF16 and FP8 fixtures (seed 1, with the
 * shipped tokenizer so mimo-eval can read text), the MXFP4 artifact of the FP8 one (mimo-quantize
 * defaults, --max-shard-size 4M so a patched copy copies one 4 MB shard), and a 2-layer BF16
 * model with 1025 experts (mimo-mkfixture --experts 1025 --layers 2).
 *
 * A cell is (tool, fixture, tensor class, fault) or (tool, fixture, config key, value). Its model
 * is a copy of the fixture made of hard links, except the one file patched, which is copied and
 * then edited in place: one element of one tensor rewritten at its offset in the safetensors data
 * (offsets from the library's reader: 8 + header length + the tensor's begin), one key of
 * config.json or dflash/config.json, or mask_embedding.pt rewritten through the library's writer
 * with one element changed (the zip stores a CRC of its data, so a byte patch would be a TZ_CRC
 * error rather than a value). Artifact copies get their mimo-manifest.json regenerated for what
 * was patched (the file's size and SHA-256, the tensor's CRC-32C), so mimo-verify's integrity
 * check passes and the value checks are what is tested; the control cells prove the regenerated
 * manifest passes the gate.
 *
 * Faults, written in the tensor's own dtype: NaN, +Inf and finite 1e30 in BF16 and F32 tensors;
 * the FP8 NaN code 0x7F in an F8_E4M3 weight; 0, -1 and NaN in a weight_scale_inv; in an MXFP4
 * expert, E8M0 scale 0xFD / 0xFE / 0xFF in a block whose first code is 6.0 (so 0xFD and 0xFE
 * overflow f32 when decoded and 0xFF is the E8M0 NaN; mxfp4_formats.md). Tools: mimo-run without
 * and with the drafter, mimo-eval, mimo-verify without and with --source (a small policy model
 * section), mimo-quantize with the fault in its source.
 *
 * A fault cell passes when the tool terminated normally (no signal, and under ASan/UBSan no
 * sanitizer report), exited 1 or 3, and one line of its stdout or stderr names the tensor (the
 * config key, or "mask_embedding.pt") together with a rule id (a [A-Z][A-Z0-9]*_[A-Z0-9_]* token).
 * Control cells (the unpatched copies) must exit 0. Two cells prove values are not silently
 * ignored: the 1025-expert model whose correction bias makes expert 1024 win for every token must
 * run (exit 0) and its perplexity (mimo-eval, 10 significant digits) must differ from the same
 * model with expert 1024's weights zeroed (a runtime that never selects experts past 1023 gives
 * the same figure twice); a model with n_group 2 / topk_group 1 must either be refused naming
 * n_group or route differently from n_group 1 (its perplexity differs).
 *
 * The program prints the matrix size first, one line per cell, and a summary; it fails when any
 * cell fails and lists every failing cell with what happened (signal, exit code, missing rule or
 * name, sanitizer report) and the tool's first relevant stderr line. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "../quantize/qt_util.h"
#include "libquant/libquant.h"

static const char *MK, *QUANT, *RUN, *EVAL, *VERIFY, *TOKENIZER, *DEVICE;
static char root[512];

/* ---- fixtures ---- */

enum { F_BF16, F_FP8, F_ART, F_E1025, F_N };
static const char *fix_name[F_N] = {"bf16", "fp8", "mxfp4", "e1025"};
static char fix_dir[F_N][700];
static lq_ckpt *fix_ck[F_N], *fix_dck[F_N]; /* backbone and dflash/ (NULL when none) */
static char text_file[700], policy_file[700];

/* ---- cells ---- */

enum { T_RUN, T_RUN_D, T_EVAL, T_VERIFY, T_VERIFY_S, T_QUANT, T_N };
static const char *tool_name[T_N] = {"mimo-run", "mimo-run --dflash", "mimo-eval", "mimo-verify",
                                     "mimo-verify --source", "mimo-quantize"};

enum {
    V_NAN, V_INF, V_BIG,          /* BF16 / F32 */
    V_FP8_NAN,                    /* F8_E4M3 code 0x7F */
    V_SCALE_0, V_SCALE_NEG, V_SCALE_NAN, /* F32 weight_scale_inv */
    V_E8M0_FD, V_E8M0_FE, V_E8M0_FF,     /* MXFP4 scale byte, code 6.0 in the block */
    V_NAN_ALL,                    /* every element NaN (BF16 / F32) */
    V_N
};
static int is_e8m0(int f) { return f >= V_E8M0_FD && f <= V_E8M0_FF; }

static const char *fault_name[V_N] = {"NaN", "+Inf", "1e30", "FP8 NaN 0x7F", "scale_inv 0",
                                      "scale_inv -1", "scale_inv NaN", "E8M0 0xFD", "E8M0 0xFE",
                                      "E8M0 0xFF", "all NaN"};

enum { K_CONTROL, K_VALUE, K_CONFIG, K_DCONFIG, K_E1025_RUN, K_E1025_EVAL, K_NGROUP_RUN, K_NGROUP_EVAL };

typedef struct cell {
    int tool, fix, kind;
    const char *cls;           /* tensor class (K_VALUE) or a short label */
    const char *tensor;        /* K_VALUE: tensor name (relative to dflash/ when drafter) */
    int drafter;               /* the tensor or config is the drafter's */
    int fault;
    const char *key, *value;   /* K_CONFIG / K_DCONFIG: dotted key and JSON value */
    const char *key2, *value2; /* optional second edit of the same change */
    char named[200];           /* what the error must name */
} cell;

static cell cells[400];
static size_t ncells;

static cell *add(int tool, int fix, int kind, const char *cls)
{
    if (ncells == sizeof(cells) / sizeof(cells[0])) {
        fprintf(stderr, "test_hostile: too many cells\n");
        exit(2);
    }
    cell *c = &cells[ncells++];
    memset(c, 0, sizeof(*c));
    c->tool = tool;
    c->fix = fix;
    c->kind = kind;
    c->cls = cls;
    return c;
}

static void add_value(int tool, int fix, const char *cls, const char *tensor, int drafter, int fault)
{
    cell *c = add(tool, fix, K_VALUE, cls);
    c->tensor = tensor;
    c->drafter = drafter;
    c->fault = fault;
    /* A bad scale may be reported against its weight: "X.weight" is also a prefix of the scale's
     * own name "X.weight_scale_inv" / "X.weight_scale", so either name satisfies the check. */
    const char *sfx = strstr(tensor, ".weight_scale");
    if (!strcmp(tensor, "mask_embedding.pt"))
        qt_fmt(c->named, sizeof(c->named), "mask_embedding.pt");
    else if (sfx)
        qt_fmt(c->named, sizeof(c->named), "%.*s.weight", (int)(sfx - tensor), tensor);
    else
        qt_fmt(c->named, sizeof(c->named), "%s", tensor);
}

static void add_config(int tool, int fix, int drafter, const char *key, const char *value,
                       const char *key2, const char *value2, const char *named)
{
    cell *c = add(tool, fix, drafter ? K_DCONFIG : K_CONFIG, drafter ? "drafter config" : "config");
    c->drafter = drafter;
    c->key = key;
    c->value = value;
    c->key2 = key2;
    c->value2 = value2;
    qt_fmt(c->named, sizeof(c->named), "%s", named);
}

/* Tensor classes: the name in the MXFP4 artifact / FP8 source, in the BF16 source, and the faults
 * its dtype takes. Layer 1 is a sliding-window MoE layer of the tiny fixture, layer 0 the dense
 * global one (tools/fixture.c). */
typedef struct tclass {
    const char *cls, *name_q, *name_bf16;
    int faults[3], nfaults;
} tclass;

#define FLOATS {V_NAN, V_INF, V_BIG}, 3
#define SCALES {V_SCALE_0, V_SCALE_NEG, V_SCALE_NAN}, 3
#define E8M0 {V_E8M0_FD, V_E8M0_FE, V_E8M0_FF}, 3

static const tclass TARGET[] = {
    {"embedding", "model.embed_tokens.weight", "model.embed_tokens.weight", FLOATS},
    {"lm_head", "lm_head.weight", "lm_head.weight", FLOATS},
    {"norm", "model.layers.1.input_layernorm.weight", "model.layers.1.input_layernorm.weight", FLOATS},
    {"attention projection", "model.layers.1.self_attn.qkv_proj.weight", "model.layers.1.self_attn.q_proj.weight",
     {V_FP8_NAN}, 1},
    {"qkv weight_scale_inv", "model.layers.1.self_attn.qkv_proj.weight_scale_inv", NULL, SCALES},
    {"o_proj", "model.layers.1.self_attn.o_proj.weight", "model.layers.1.self_attn.o_proj.weight", FLOATS},
    {"sink bias", "model.layers.1.self_attn.attention_sink_bias", "model.layers.1.self_attn.attention_sink_bias",
     FLOATS},
    {"router", "model.layers.1.mlp.gate.weight", "model.layers.1.mlp.gate.weight", FLOATS},
    {"e_score_correction_bias", "model.layers.1.mlp.gate.e_score_correction_bias",
     "model.layers.1.mlp.gate.e_score_correction_bias", FLOATS},
    {"dense mlp", "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.gate_proj.weight", {V_FP8_NAN}, 1},
    {"dense weight_scale_inv", "model.layers.0.mlp.gate_proj.weight_scale_inv", NULL, SCALES},
    {"routed expert", "model.layers.1.mlp.experts.3.up_proj.weight_scale", "model.layers.1.mlp.experts.3.up_proj.weight",
     E8M0},
};
#define NTARGET (sizeof(TARGET) / sizeof(TARGET[0]))

static const tclass DRAFTER[] = {
    {"drafter fc", "fc.weight", NULL, FLOATS},
    {"drafter layer weight", "layers.0.self_attn.q_proj.weight", NULL, FLOATS},
    {"drafter norm", "layers.1.input_layernorm.weight", NULL, FLOATS},
    {"mask embedding", "mask_embedding.pt", NULL, FLOATS},
};
#define NDRAFTER (sizeof(DRAFTER) / sizeof(DRAFTER[0]))

static void build_matrix(void)
{
    /* Controls: every tool on an untouched copy. */
    static const int ctl_fix[T_N] = {F_ART, F_ART, F_ART, F_ART, F_ART, F_BF16};
    for (int t = 0; t < T_N; t++)
        add(t, ctl_fix[t], K_CONTROL, "control");

    /* mimo-run, no drafter: every target class with every fault its dtype takes, on the artifact;
     * the BF16 source's BF16 projection, dense and expert weights; the FP8 source's expert. */
    for (size_t i = 0; i < NTARGET; i++)
        for (int f = 0; f < TARGET[i].nfaults; f++)
            add_value(T_RUN, F_ART, TARGET[i].cls, TARGET[i].name_q, 0, TARGET[i].faults[f]);
    static const char *const bf16_only[] = {"attention projection", "dense mlp", "routed expert"};
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 0; i < NTARGET; i++)
            if (!strcmp(TARGET[i].cls, bf16_only[k]))
                for (int f = V_NAN; f <= V_BIG; f++)
                    add_value(T_RUN, F_BF16, TARGET[i].cls, TARGET[i].name_bf16, 0, f);
    add_value(T_RUN, F_FP8, "routed expert", "model.layers.1.mlp.experts.3.up_proj.weight", 0, V_FP8_NAN);
    for (int f = V_SCALE_0; f <= V_SCALE_NAN; f++)
        add_value(T_RUN, F_FP8, "expert weight_scale_inv", "model.layers.1.mlp.experts.3.up_proj.weight_scale_inv",
                  0, f);

    /* mimo-run with the drafter: every drafter class and fault; and the router NaN that used to
     * crash the target. */
    for (size_t i = 0; i < NDRAFTER; i++)
        for (int f = 0; f < DRAFTER[i].nfaults; f++)
            add_value(T_RUN_D, F_ART, DRAFTER[i].cls, DRAFTER[i].name_q, 1, DRAFTER[i].faults[f]);
    add_value(T_RUN_D, F_ART, "router", "model.layers.1.mlp.gate.weight", 0, V_NAN);
    /* A router that is NaN throughout, as a broken conversion would leave it. */
    add_value(T_RUN, F_ART, "router", "model.layers.1.mlp.gate.weight", 0, V_NAN_ALL);

    /* mimo-eval, mimo-verify with and without --source: every class once, the faults taken in
     * turn so each tool sees each fault (the full cross product is mimo-run's). The gate with a
     * source reads the drafter through the same check as without one, and each of its cells
     * costs a model check (seconds under ASan): one drafter class there. */
    int tools[3] = {T_EVAL, T_VERIFY, T_VERIFY_S};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < NTARGET; i++)
            add_value(tools[k], F_ART, TARGET[i].cls, TARGET[i].name_q, 0,
                      TARGET[i].faults[(i + (size_t)k) % (size_t)TARGET[i].nfaults]);
        for (size_t i = tools[k] == T_VERIFY_S ? 1 : 0; i < (tools[k] == T_VERIFY_S ? 2 : NDRAFTER); i++)
            add_value(tools[k], F_ART, DRAFTER[i].cls, DRAFTER[i].name_q, 1,
                      DRAFTER[i].faults[(i + (size_t)k) % (size_t)DRAFTER[i].nfaults]);
    }
    add_value(T_VERIFY_S, F_ART, "router", "model.layers.1.mlp.gate.weight", 0, V_NAN_ALL);
    /* The gate without a source sees every E8M0 fault: the two its turn above left out. */
    int taken = TARGET[NTARGET - 1].faults[(NTARGET - 1 + 1) % 3]; /* k = 1 is T_VERIFY */
    for (int f = V_E8M0_FD; f <= V_E8M0_FF; f++)
        if (f != taken)
            add_value(T_VERIFY, F_ART, "routed expert", TARGET[NTARGET - 1].name_q, 0, f);

    /* mimo-quantize: the fault in its source. BF16 source: every class it has, faults in turn;
     * FP8 source: FP8 NaN codes and bad scales; the artifact as an MXFP4 source (passed through):
     * its E8M0 faults; the drafter's classes. */
    for (size_t i = 0; i < NTARGET; i++)
        if (TARGET[i].name_bf16)
            add_value(T_QUANT, F_BF16, TARGET[i].cls, TARGET[i].name_bf16, 0, (int)(i % 3));
    add_value(T_QUANT, F_FP8, "attention projection", "model.layers.1.self_attn.qkv_proj.weight", 0, V_FP8_NAN);
    add_value(T_QUANT, F_FP8, "routed expert", "model.layers.1.mlp.experts.3.up_proj.weight", 0, V_FP8_NAN);
    for (int f = V_SCALE_0; f <= V_SCALE_NAN; f++)
        add_value(T_QUANT, F_FP8, "expert weight_scale_inv", "model.layers.1.mlp.experts.3.up_proj.weight_scale_inv",
                  0, f);
    add_value(T_QUANT, F_FP8, "dense weight_scale_inv", "model.layers.0.mlp.gate_proj.weight_scale_inv", 0, V_SCALE_NAN);
    for (int f = V_E8M0_FD; f <= V_E8M0_FF; f++)
        add_value(T_QUANT, F_ART, "routed expert", TARGET[NTARGET - 1].name_q, 0, f);
    for (size_t i = 0; i < NDRAFTER; i++)
        add_value(T_QUANT, F_BF16, DRAFTER[i].cls, DRAFTER[i].name_q, 1, DRAFTER[i].faults[i % 3]);

    /* Config values: empty, zero, past a range, not dividing, past a size cap (mimo_config.c),
     * each through one tool in turn (they share one parser). The name expected is the key the
     * parser blames. */
    add_config(T_RUN, F_ART, 0, "hidden_size", "null", NULL, NULL, "hidden_size");
    add_config(T_RUN_D, F_ART, 0, "n_routed_experts", "0", NULL, NULL, "n_routed_experts");
    add_config(T_EVAL, F_ART, 0, "hybrid_layer_pattern", "[]", NULL, NULL, "hybrid_layer_pattern");
    add_config(T_VERIFY, F_ART, 0, "num_experts_per_tok", "0", NULL, NULL, "num_experts_per_tok");
    add_config(T_QUANT, F_BF16, 0, "model_type", "\"\"", NULL, NULL, "model_type");
    add_config(T_RUN, F_ART, 0, "vocab_size", "4294967296", NULL, NULL, "vocab_size");
    add_config(T_VERIFY_S, F_ART, 0, "num_experts_per_tok", "17", NULL, NULL, "num_experts_per_tok");
    add_config(T_RUN, F_ART, 0, "num_attention_heads", "7", NULL, NULL, "num_key_value_heads");
    add_config(T_EVAL, F_ART, 0, "partial_rotary_factor", "0.34", NULL, NULL, "partial_rotary_factor");
    add_config(T_QUANT, F_BF16, 0, "partial_rotary_factor", "1.5", NULL, NULL, "partial_rotary_factor");
    add_config(T_RUN, F_ART, 0, "sliding_window", "0", "sliding_window_size", "0", "sliding_window");
    add_config(T_VERIFY, F_ART, 0, "n_routed_experts", "65536", "moe_intermediate_size", "16777216",
               "n_routed_experts");
    add_config(T_RUN_D, F_ART, 0, "head_dim", "4097", NULL, NULL, "head_dim");
    add_config(T_EVAL, F_ART, 0, "num_hidden_layers", "100000", NULL, NULL, "num_hidden_layers");
    add_config(T_QUANT, F_BF16, 0, "vocab_size", "2147483647", NULL, NULL, "vocab_size");
    add_config(T_RUN, F_ART, 0, "n_group", "3", NULL, NULL, "n_group");
    add_config(T_VERIFY_S, F_ART, 0, "topk_group", "2", NULL, NULL, "topk_group");
    /* The drafter's config. */
    add_config(T_RUN_D, F_ART, 1, "dflash_config.block_size", "0", "block_size", "0", "block_size");
    add_config(T_VERIFY, F_ART, 1, "dflash_config.target_layer_ids", "[0, 5, 99]", NULL, NULL, "target_layer_ids");
    add_config(T_EVAL, F_ART, 1, "num_attention_heads", "3", NULL, NULL, "num_key_value_heads");
    add_config(T_RUN_D, F_ART, 1, "head_dim", "0", NULL, NULL, "head_dim");
    add_config(T_RUN_D, F_ART, 1, "num_attention_heads", "65536", NULL, NULL, "num_attention_heads");
    add_config(T_VERIFY_S, F_ART, 1, "dflash_config.swa_window_size", "0", NULL, NULL, "swa_window_size");
    add_config(T_QUANT, F_BF16, 1, "hidden_size", "null", NULL, NULL, "hidden_size");

    /* Values that must not be silently ignored. */
    add(T_RUN, F_E1025, K_E1025_RUN, "1025 experts, expert 1024 wins");
    add(T_EVAL, F_E1025, K_E1025_EVAL, "1025 experts, expert 1024 wins");
    add(T_RUN, F_BF16, K_NGROUP_RUN, "n_group 2, topk_group 1");
    add(T_EVAL, F_BF16, K_NGROUP_EVAL, "n_group 2, topk_group 1");
}

/* ---- patching ---- */

typedef struct located {
    char rel[300];          /* file relative to the fixture directory */
    uint64_t off;           /* file offset of the tensor's first byte */
    const lq_tensor_info *info;
} located;

static int locate(int fix, int drafter, const char *name, located *out)
{
    const lq_ckpt *ck = drafter ? fix_dck[fix] : fix_ck[fix];
    lq_ckpt_tensor t;
    if (!ck || lq_ckpt_find(ck, name, &t) != 0)
        return -1;
    const lq_st_file *f = lq_ckpt_shard(ck, t.shard);
    qt_fmt(out->rel, sizeof(out->rel), "%s%s", drafter ? "dflash/" : "", lq_ckpt_shard_name(ck, t.shard));
    out->off = 8 + lq_st_header_len(f) + t.info->begin;
    out->info = t.info;
    return 0;
}

/* Replaces a (possibly hard-linked) file by a private copy, so editing it leaves the fixture
 * alone. */
static int unshare(const char *dir, const char *rel)
{
    char src[1500], dst[1500];
    qt_fmt(dst, sizeof(dst), "%s/%s", dir, rel);
    qt_fmt(src, sizeof(src), "%s.unshare", dst);
    if (rename(dst, src) != 0 || qt_copy_file(src, dst) != 0)
        return -1;
    return unlink(src);
}

static int pwrite_at(const char *path, uint64_t off, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t w = pwrite(fd, b, n, (off_t)off);
    close(fd);
    return w == (ssize_t)n ? 0 : -1;
}

static int pread_at(const char *path, uint64_t off, void *b, size_t n)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t r = pread(fd, b, n, (off_t)off);
    close(fd);
    return r == (ssize_t)n ? 0 : -1;
}

/* The value of a fault as the bytes of one element of dtype dt (little-endian). */
static int fault_bytes(int fault, lq_dtype dt, uint8_t *b, size_t *n)
{
    float f;
    switch (fault) {
    case V_NAN: case V_SCALE_NAN: case V_NAN_ALL: f = NAN; break;
    case V_INF: f = INFINITY; break;
    case V_BIG: f = 1e30f; break;
    case V_SCALE_0: f = 0.0f; break;
    case V_SCALE_NEG: f = -1.0f; break;
    case V_FP8_NAN:
        if (dt != LQ_DTYPE_F8_E4M3)
            return -1;
        b[0] = 0x7F; /* S.1111.111: the only E4M3 NaN (no infinities in e4m3fn) */
        *n = 1;
        return 0;
    default: return -1;
    }
    if (dt == LQ_DTYPE_F32) {
        memcpy(b, &f, 4);
        *n = 4;
        return 0;
    }
    if (dt == LQ_DTYPE_BF16) {
        if (lq_from_f32(LQ_DTYPE_BF16, &f, 1, b) != LQ_OK)
            return -1;
        *n = 2;
        return 0;
    }
    return -1;
}

/* Reads the manifest of an artifact copy, updates the entries of the files in rels (size,
 * SHA-256) and the CRC-32C of the named backbone tensors, and writes it back in place of the
 * hard link. */
static int regen_manifest(const char *dir, const char *const *rels, size_t nrels, const char *const *tensors,
                          size_t ntensors)
{
    char mp[1500];
    qt_fmt(mp, sizeof(mp), "%s/%s", dir, LQ_MANIFEST_FILE);
    cJSON *m = qt_json(mp);
    if (!m)
        return -1;
    int rc = 0;
    cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files"), *e;
    for (size_t i = 0; i < nrels; i++) {
        char sha[65];
        uint64_t size = 0;
        int found = 0;
        if (qt_sha256_file(qt_p("%s/%s", dir, rels[i]), sha, &size) != 0)
            rc = -1;
        cJSON_ArrayForEach(e, files) {
            const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "path"));
            if (p && !strcmp(p, rels[i])) {
                cJSON_ReplaceItemInObjectCaseSensitive(e, "sha256", cJSON_CreateString(sha));
                cJSON_ReplaceItemInObjectCaseSensitive(e, "size", cJSON_CreateNumber((double)size));
                found = 1;
            }
        }
        if (!found)
            rc = -1;
    }
    for (size_t k = 0; k < ntensors; k++) {
        const char *tensor = tensors[k];
        int found = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "tensors")) {
            const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
            if (!n || strcmp(n, tensor))
                continue;
            located loc;
            if (locate(F_ART, 0, tensor, &loc) != 0)
                break;
            size_t nb = (size_t)loc.info->nbytes;
            uint8_t *buf = malloc(nb ? nb : 1);
            if (buf && pread_at(qt_p("%s/%s", dir, loc.rel), loc.off, buf, nb) == 0) {
                char crc[16];
                qt_fmt(crc, sizeof(crc), "%08x", lq_crc32c(0, buf, nb));
                cJSON_ReplaceItemInObjectCaseSensitive(e, "crc32c", cJSON_CreateString(crc));
                found = 1;
            }
            free(buf);
        }
        if (!found)
            rc = -1;
    }
    char *text = cJSON_Print(m);
    cJSON_Delete(m);
    if (!text || unlink(mp) != 0 || qt_write(mp, text, strlen(text)) != 0)
        rc = -1;
    free(text);
    return rc;
}

/* Sets (value NULL: deletes) a dotted key of a JSON object, creating objects on the way. */
static int set_path(cJSON *root_obj, const char *path, const char *value)
{
    char buf[256];
    qt_fmt(buf, sizeof(buf), "%s", path);
    cJSON *obj = root_obj;
    char *p = buf, *dot;
    while ((dot = strchr(p, '.')) != NULL) {
        *dot = '\0';
        cJSON *next = cJSON_GetObjectItemCaseSensitive(obj, p);
        if (!next)
            next = cJSON_AddObjectToObject(obj, p);
        obj = next;
        p = dot + 1;
    }
    if (!value) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, p);
        return 0;
    }
    cJSON *v = cJSON_Parse(value);
    if (!v)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(obj, p))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, p, v);
    else
        cJSON_AddItemToObject(obj, p, v);
    return 0;
}

static int edit_json(const char *dir, const char *rel, const char *k1, const char *v1, const char *k2,
                     const char *v2)
{
    char p[1500];
    qt_fmt(p, sizeof(p), "%s/%s", dir, rel);
    cJSON *j = qt_json(p);
    if (!j)
        return -1;
    int rc = set_path(j, k1, v1);
    if (k2 && rc == 0)
        rc = set_path(j, k2, v2);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text || unlink(p) != 0 || qt_write(p, text, strlen(text)) != 0)
        rc = -1;
    free(text);
    return rc;
}

/* One element of the mask embedding changed, through the library's reader and writer. */
static int patch_mask(const char *dir, int fault)
{
    char p[1500];
    qt_fmt(p, sizeof(p), "%s/dflash/mask_embedding.pt", dir);
    int64_t id = 0;
    uint16_t *emb = NULL;
    uint64_t h = 0;
    lq_error err;
    if (lq_torchzip_read_mask(p, &id, &emb, &h, &err) != LQ_OK)
        return -1;
    uint8_t b[4];
    size_t n = 0;
    int rc = fault_bytes(fault, LQ_DTYPE_BF16, b, &n);
    if (rc == 0) {
        memcpy(&emb[h / 2], b, 2);
        /* The writer replaces the file (temporary + rename), so the hard link is left alone. */
        rc = lq_torchzip_write_mask(p, "mask_embedding", id, emb, h, NULL, &err) == LQ_OK ? 0 : -1;
    }
    free(emb);
    return rc;
}

/* Writes the cell's fault into its copy `dir` of the fixture. Returns the patched file (relative)
 * in rel, or -1 when the cell cannot be built (a bug of the test). */
static int patch_value(const cell *c, const char *dir, char *rel, size_t cap)
{
    if (!strcmp(c->tensor, "mask_embedding.pt")) {
        qt_fmt(rel, cap, "dflash/mask_embedding.pt");
        return patch_mask(dir, c->fault);
    }
    located loc;
    if (locate(c->fix, c->drafter, c->tensor, &loc) != 0)
        return -1;
    qt_fmt(rel, cap, "%s", loc.rel);
    if (unshare(dir, loc.rel) != 0)
        return -1;
    const char *path = qt_p("%s/%s", dir, loc.rel);
    const lq_tensor_info *ti = loc.info;
    if (is_e8m0(c->fault)) {
        /* MXFP4: scale U8 [N, K/32] (this tensor) and codes U8 [N, K/2] (name without
         * "_scale"); row N/2, block 0: scale byte and the low nibble (element 0) of its first
         * code byte, set to E2M1 0x7 = +6.0. */
        char codes[300];
        size_t len = strlen(c->tensor);
        if (ti->rank != 2 || len < 7 || strcmp(c->tensor + len - 6, "_scale"))
            return -1;
        qt_fmt(codes, sizeof(codes), "%.*s", (int)(len - 6), c->tensor);
        located cl;
        if (locate(c->fix, 0, codes, &cl) != 0 || strcmp(cl.rel, loc.rel) != 0)
            return -1; /* both in one shard: mimo-quantize orders a tensor's pair together */
        uint64_t row = ti->shape[0] / 2, code_row_bytes = cl.info->shape[1];
        uint8_t s = (uint8_t)(0xFD + (c->fault - V_E8M0_FD)), code;
        if (pread_at(path, cl.off + row * code_row_bytes, &code, 1) != 0)
            return -1;
        code = (uint8_t)((code & 0xF0) | 0x7);
        if (pwrite_at(path, cl.off + row * code_row_bytes, &code, 1) != 0 ||
            pwrite_at(path, loc.off + row * ti->shape[1], &s, 1) != 0)
            return -1;
        return 0;
    }
    uint8_t b[4];
    size_t n = 0;
    if (fault_bytes(c->fault, ti->dtype, b, &n) != 0)
        return -1;
    if (c->fault == V_NAN_ALL) {
        uint8_t *all = malloc((size_t)ti->nbytes);
        if (!all)
            return -1;
        for (uint64_t e = 0; e < ti->numel; e++)
            memcpy(all + e * n, b, n);
        int rc = pwrite_at(path, loc.off, all, (size_t)ti->nbytes);
        free(all);
        return rc;
    }
    /* The element: in the embedding, column 3 of row 1 (token 1 is in every prompt here, so the
     * value reaches the forward pass); elsewhere the middle element. */
    uint64_t elem = !strcmp(c->tensor, "model.embed_tokens.weight") ? ti->shape[1] + 3 : ti->numel / 2;
    return pwrite_at(path, loc.off + elem * n, b, n);
}

/* Builds the cell's model directory: hard links to the fixture, then the patch. */
static int make_model(const cell *c, const char *dir)
{
    if (qt_link_tree(fix_dir[c->fix], dir) != 0)
        return -1;
    char rel[300] = "", codes[300];
    const char *rels[1] = {rel}, *tensors[2];
    size_t nrels = 1, ntensors = 0;
    int rc = 0;
    switch (c->kind) {
    case K_CONTROL:
        nrels = 0;
        break;
    case K_VALUE:
        rc = patch_value(c, dir, rel, sizeof(rel));
        if (!c->drafter && strcmp(c->tensor, "mask_embedding.pt"))
            tensors[ntensors++] = c->tensor;
        if (is_e8m0(c->fault)) {
            /* the codes tensor changed too */
            qt_fmt(codes, sizeof(codes), "%.*s", (int)(strlen(c->tensor) - 6), c->tensor);
            tensors[ntensors++] = codes;
        }
        break;
    case K_CONFIG:
    case K_DCONFIG:
        qt_fmt(rel, sizeof(rel), "%s", c->kind == K_DCONFIG ? "dflash/config.json" : "config.json");
        rc = edit_json(dir, rel, c->key, c->value, c->key2, c->value2);
        break;
    default:
        return -1;
    }
    if (rc == 0 && c->fix == F_ART)
        rc = regen_manifest(dir, rels, nrels, tensors, ntensors);
    return rc;
}

/* ---- running a tool ---- */

typedef struct outcome {
    int exited, code, sig, timed_out;
    double secs;
} outcome;

static outcome run_tool(const char *const *argv, const char *out, const char *err, int timeout_s)
{
    outcome o = {0};
    qt_run_opts ro = {.out_path = out, .err_path = err};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = qt_spawn(argv, &ro);
    int st = 0;
    for (;;) {
        pid_t r = pid > 0 ? waitpid(pid, &st, WNOHANG) : -1;
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            o.code = -1;
            return o;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec >= timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            o.timed_out = 1;
            break;
        }
        usleep(2000);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    o.secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (!o.timed_out && WIFEXITED(st)) {
        o.exited = 1;
        o.code = WEXITSTATUS(st);
    } else if (!o.timed_out && WIFSIGNALED(st)) {
        o.sig = WTERMSIG(st);
    }
    return o;
}

/* argv for tool t on model dir m (out is mimo-quantize's output directory; mxfp4_source: m is an
 * artifact given to mimo-quantize as its source). */
static size_t tool_argv(int t, const char *m, const char *out, int mxfp4_source, const char **a)
{
    size_t n = 0;
    switch (t) {
    case T_RUN:
    case T_RUN_D:
        a[n++] = RUN, a[n++] = m, a[n++] = "--prompt-ids", a[n++] = "1,2,3", a[n++] = "--max-tokens";
        a[n++] = t == T_RUN ? "2" : "3";
        a[n++] = t == T_RUN ? "--no-dflash" : "--dflash";
        a[n++] = "--threads", a[n++] = "2", a[n++] = "--format", a[n++] = "json";
        if (DEVICE)
            a[n++] = "--device", a[n++] = DEVICE;
        break;
    case T_EVAL:
        a[n++] = EVAL, a[n++] = m, a[n++] = "--text", a[n++] = text_file, a[n++] = "--ctx", a[n++] = "8";
        a[n++] = "--ppl-tokens", a[n++] = "8", a[n++] = "--prompts", a[n++] = "1", a[n++] = "--prompt-len";
        a[n++] = "4", a[n++] = "--gen-tokens", a[n++] = "2", a[n++] = "--no-speed", a[n++] = "--threads";
        a[n++] = "2", a[n++] = "--format", a[n++] = "json", a[n++] = "-q";
        if (DEVICE)
            a[n++] = "--device", a[n++] = DEVICE;
        break;
    case T_VERIFY:
    case T_VERIFY_S:
        a[n++] = VERIFY, a[n++] = m, a[n++] = "--threads", a[n++] = "2";
        if (t == T_VERIFY_S)
            a[n++] = "--source", a[n++] = fix_dir[F_FP8], a[n++] = "--policy", a[n++] = policy_file;
        break;
    case T_QUANT:
        a[n++] = QUANT, a[n++] = m, a[n++] = out, a[n++] = "--threads", a[n++] = "2", a[n++] = "-q";
        /* An MXFP4 source passes its experts through (their scales checked); something must still
         * be converted, or the plan is empty (PLAN_NOTHING): the dense FP8 down_proj. */
        if (mxfp4_source)
            a[n++] = "--include", a[n++] = "model.layers.0.mlp.down_proj.weight";
        break;
    }
    a[n] = NULL;
    return n;
}

/* ---- judging ---- */

static int is_rule_char(char ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_'; }
static int is_word_char(char ch) { return is_rule_char(ch) || (ch >= 'a' && ch <= 'z'); }

/* First rule id on the line ([A-Z][A-Z0-9]*_[A-Z0-9_]*, a whole word), copied to rule. */
static int line_rule(const char *s, size_t n, char *rule, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        if (!(s[i] >= 'A' && s[i] <= 'Z') || (i > 0 && is_word_char(s[i - 1])))
            continue;
        size_t j = i;
        int us = 0;
        while (j < n && is_rule_char(s[j]))
            us |= s[j++] == '_';
        if (us && s[j - 1] != '_' && (j == n || !is_word_char(s[j]))) {
            qt_fmt(rule, cap, "%.*s", (int)(j - i), s + i);
            return 1;
        }
        i = j;
    }
    return 0;
}

/* name as a whole word of line: not preceded by a letter, digit or '_' (nor by '.' unless
 * dot_before, so the drafter's "layers.1.input_layernorm.weight" is not found inside the
 * backbone's "model.layers.1..."), not followed by a letter, digit or '.' ('_' may follow:
 * "X.weight" names "X.weight_scale_inv" too). */
static int has_word(const char *line, const char *name, int dot_before)
{
    size_t n = strlen(name);
    for (const char *p = strstr(line, name); p; p = strstr(p + 1, name)) {
        char b = p > line ? p[-1] : ' ', a = p[n];
        int alnum_b = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '_';
        int alnum_a = (a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z') || (a >= '0' && a <= '9') || a == '.';
        if (!alnum_b && (dot_before || b != '.') && !alnum_a)
            return 1;
    }
    return 0;
}

/* A line of text holding both `name` (a whole word; config keys may follow a '.') and a rule id:
 * the rule goes to rule. */
static int names_with_rule(const char *text, const char *name, int is_key, char *rule, size_t cap)
{
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, n);
        int hit = line && has_word(line, name, is_key) && line_rule(line, n, rule, cap);
        free(line);
        if (hit)
            return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

static const char *sanitizer_report(const char *err)
{
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                                        "UndefinedBehaviorSanitizer", "ThreadSanitizer"};
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
        if (err && strstr(err, marks[i]))
            return strstr(err, marks[i]);
    return NULL;
}

/* First line of s (at most 200 bytes) into buf, or "(none)". */
static void first_line(const char *s, const char *prefer, char *buf, size_t cap)
{
    const char *p = s && prefer ? strstr(s, prefer) : NULL;
    if (!p)
        p = s;
    while (p && (*p == '\n' || *p == ' '))
        p++;
    if (!p || !*p) {
        qt_fmt(buf, cap, "(none)");
        return;
    }
    size_t n = strcspn(p, "\n");
    qt_fmt(buf, cap, "%.*s", (int)(n > 200 ? 200 : n), p);
}

typedef struct verdict {
    int pass;
    char what[300];   /* how it ended, and what was missing */
    char line[260];   /* the tool's message */
} verdict;

/* Signal, timeout, sanitizer report: a failure whatever else happened. */
static int abnormal(const outcome *o, const char *err, verdict *v)
{
    const char *san = sanitizer_report(err);
    if (o->timed_out)
        qt_fmt(v->what, sizeof(v->what), "timed out");
    else if (o->sig)
        qt_fmt(v->what, sizeof(v->what), "killed by signal %d (%s)%s", o->sig, strsignal(o->sig),
               san ? " after a sanitizer report" : "");
    else if (!o->exited)
        qt_fmt(v->what, sizeof(v->what), "did not run");
    else if (san)
        qt_fmt(v->what, sizeof(v->what), "exit %d with a sanitizer report", o->code);
    else
        return 0;
    first_line(err, san ? san : "ERROR", v->line, sizeof(v->line));
    return 1;
}

static void judge_refusal(const outcome *o, const char *out, const char *err, const char *name, int is_key,
                          verdict *v)
{
    if (abnormal(o, err, v))
        return;
    char rule[64] = "";
    int named = names_with_rule(err, name, is_key, rule, sizeof(rule)) ||
                names_with_rule(out, name, is_key, rule, sizeof(rule));
    if (o->code != 1 && o->code != 3) {
        qt_fmt(v->what, sizeof(v->what), "exit %d (want 1 or 3)%s", o->code, o->code == 0 ? ": accepted" : "");
        first_line(err, NULL, v->line, sizeof(v->line));
        if (o->code == 0 && !strcmp(v->line, "(none)"))
            first_line(out, "FAIL", v->line, sizeof(v->line));
        return;
    }
    if (!named) {
        qt_fmt(v->what, sizeof(v->what), "exit %d, but no line names '%s' with a rule", o->code, name);
        first_line(err, NULL, v->line, sizeof(v->line));
        if (!strcmp(v->line, "(none)"))
            first_line(out, "FAIL", v->line, sizeof(v->line));
        return;
    }
    v->pass = 1;
    qt_fmt(v->what, sizeof(v->what), "exit %d, %s names %s", o->code, rule, name);
}

/* sets[0].ppl.loss_model and loss_source of mimo-eval's JSON. */
static int eval_losses(const char *out_path, double *model, double *source)
{
    cJSON *j = qt_json(out_path);
    cJSON *ppl = j ? cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "sets"), 0), "ppl")
                   : NULL;
    cJSON *a = cJSON_GetObjectItemCaseSensitive(ppl, "loss_model"), *b = cJSON_GetObjectItemCaseSensitive(ppl, "loss_source");
    int ok = cJSON_IsNumber(a) && cJSON_IsNumber(b);
    if (ok) {
        *model = a->valuedouble;
        *source = b->valuedouble;
    }
    cJSON_Delete(j);
    return ok ? 0 : -1;
}

/* ---- the 1025-expert and n_group models ---- */

static char e1025_sel[700], e1025_zero[700], ngroup2[700];

/* e1025_sel: the 1025-expert model with e_score_correction_bias[1024] = 4 in its MoE layer: the
 * sigmoid scores are in (0, 1) and the fixture's biases N(0, 0.05), so expert 1024's choice value
 * (> 4) beats every other (< 1.3) for every token. e1025_zero: the same with expert 1024's three
 * projections zeroed. ngroup2: the BF16 fixture with n_group 2, topk_group 1 (two groups of 8
 * experts, one kept, top-8 of it: valid, mimo_arch.md 3.5). */
static int make_special_models(void)
{
    qt_fmt(e1025_sel, sizeof(e1025_sel), "%s/e1025-sel", root);
    qt_fmt(e1025_zero, sizeof(e1025_zero), "%s/e1025-zero", root);
    qt_fmt(ngroup2, sizeof(ngroup2), "%s/ngroup2", root);
    located loc;
    const char *bias = "model.layers.1.mlp.gate.e_score_correction_bias";
    if (qt_link_tree(fix_dir[F_E1025], e1025_sel) != 0 || locate(F_E1025, 0, bias, &loc) != 0 ||
        loc.info->dtype != LQ_DTYPE_F32 || loc.info->numel != 1025 || unshare(e1025_sel, loc.rel) != 0)
        return -1;
    float four = 4.0f;
    if (pwrite_at(qt_p("%s/%s", e1025_sel, loc.rel), loc.off + 1024 * 4, &four, 4) != 0)
        return -1;
    if (qt_link_tree(e1025_sel, e1025_zero) != 0)
        return -1;
    static const char *const proj[] = {"gate_proj", "up_proj", "down_proj"};
    for (int k = 0; k < 3; k++) {
        char n[200];
        qt_fmt(n, sizeof(n), "model.layers.1.mlp.experts.1024.%s.weight", proj[k]);
        if (locate(F_E1025, 0, n, &loc) != 0)
            return -1;
        struct stat sb;
        /* Unshare once per file (two projections may share a shard). */
        const char *p = qt_p("%s/%s", e1025_zero, loc.rel);
        if (stat(p, &sb) != 0 || (sb.st_nlink > 1 && unshare(e1025_zero, loc.rel) != 0))
            return -1;
        size_t nb = (size_t)loc.info->nbytes;
        uint8_t *z = calloc(1, nb);
        int rc = z ? pwrite_at(qt_p("%s/%s", e1025_zero, loc.rel), loc.off, z, nb) : -1;
        free(z);
        if (rc != 0)
            return -1;
    }
    if (qt_link_tree(fix_dir[F_BF16], ngroup2) != 0 ||
        edit_json(ngroup2, "config.json", "n_group", "2", "topk_group", "1") != 0)
        return -1;
    return 0;
}

static void judge_special(const cell *c, const char *dir, verdict *v)
{
    char out[1500], errp[1500];
    qt_fmt(out, sizeof(out), "%s/stdout", dir);
    qt_fmt(errp, sizeof(errp), "%s/stderr", dir);
    const char *a[40];
    const char *model = c->kind == K_E1025_RUN || c->kind == K_E1025_EVAL ? e1025_sel : ngroup2;
    if (c->kind == K_E1025_RUN || c->kind == K_NGROUP_RUN) {
        tool_argv(T_RUN, model, NULL, 0, a);
    } else {
        /* the model against a source that differs from it only where the cell looks */
        const char *m = c->kind == K_E1025_EVAL ? e1025_zero : ngroup2;
        const char *s = c->kind == K_E1025_EVAL ? e1025_sel : fix_dir[F_BF16];
        size_t n = 0;
        a[n++] = EVAL, a[n++] = m, a[n++] = "--source", a[n++] = s, a[n++] = "--text", a[n++] = text_file;
        a[n++] = "--ctx", a[n++] = "16", a[n++] = "--ppl-tokens", a[n++] = "16", a[n++] = "--no-dflash";
        a[n++] = "--no-speed", a[n++] = "--threads", a[n++] = "2", a[n++] = "--format", a[n++] = "json";
        a[n++] = "-q";
        if (DEVICE)
            a[n++] = "--device", a[n++] = DEVICE;
        a[n] = NULL;
    }
    outcome o = run_tool(a, out, errp, 600);
    char *err = (char *)qt_read(errp, NULL), *so = (char *)qt_read(out, NULL);
    if (abnormal(&o, err, v))
        goto done;
    int ngroup = c->kind == K_NGROUP_RUN || c->kind == K_NGROUP_EVAL;
    char rule[64];
    const int e1025 = c->kind == K_E1025_RUN || c->kind == K_E1025_EVAL;
    if (DEVICE && e1025 && (o.code == 1 || o.code == 3)) {
        /* a device backend may refuse more experts than its router serves, by a rule naming them */
        if (names_with_rule(err, "n_routed_experts", 1, rule, sizeof(rule))) {
            v->pass = 1;
            qt_fmt(v->what, sizeof(v->what), "exit %d, refused: %s names n_routed_experts", o.code, rule);
        } else {
            qt_fmt(v->what, sizeof(v->what), "exit %d without a rule naming n_routed_experts", o.code);
            first_line(err, NULL, v->line, sizeof(v->line));
        }
        goto done;
    }
    if (ngroup && (o.code == 1 || o.code == 3)) {
        /* refusing group-limited routing is allowed, by a rule naming it */
        if (names_with_rule(err, "n_group", 1, rule, sizeof(rule))) {
            v->pass = 1;
            qt_fmt(v->what, sizeof(v->what), "exit %d, refused: %s names n_group", o.code, rule);
        } else {
            qt_fmt(v->what, sizeof(v->what), "exit %d without a rule naming n_group", o.code);
            first_line(err, NULL, v->line, sizeof(v->line));
        }
        goto done;
    }
    if (o.code != 0) {
        qt_fmt(v->what, sizeof(v->what), "exit %d (want 0%s)", o.code, ngroup ? ", or a refusal naming n_group" : "");
        first_line(err, NULL, v->line, sizeof(v->line));
        goto done;
    }
    if (c->kind == K_E1025_RUN || c->kind == K_NGROUP_RUN) {
        v->pass = 1;
        qt_fmt(v->what, sizeof(v->what), "exit 0, ran");
        goto done;
    }
    double lm = 0, ls = 0;
    if (eval_losses(out, &lm, &ls) != 0) {
        qt_fmt(v->what, sizeof(v->what), "exit 0 but no loss_model / loss_source in the JSON");
        first_line(so, NULL, v->line, sizeof(v->line));
        goto done;
    }
    if (lm == ls) {
        qt_fmt(v->what, sizeof(v->what), "loss %.10g both ways: %s", lm,
               ngroup ? "n_group 2 / topk_group 1 routes exactly as n_group 1 (ignored)"
                      : "zeroing expert 1024 changes nothing, so it was never selected");
        goto done;
    }
    v->pass = 1;
    qt_fmt(v->what, sizeof(v->what), "exit 0, loss %.10g vs %.10g: %s", lm, ls,
           ngroup ? "group-limited routing changes the output" : "expert 1024 is selected and used");
done:
    free(err);
    free(so);
}

/* Whether mimo-run on the unpatched BF16 fixture fails for want of a device (RT_DEVICE), where that
 * is allowed (MIMO_REQUIRE_GPU is not 1: on the GPU host a missing device is a failure). */
static int device_absent(void)
{
    const char *req = getenv("MIMO_REQUIRE_GPU");
    if (req && req[0] == '1')
        return 0;
    char out[800], errp[800];
    qt_fmt(out, sizeof(out), "%s/probe.out", root);
    qt_fmt(errp, sizeof(errp), "%s/probe.err", root);
    const char *a[40];
    tool_argv(T_RUN, fix_dir[F_BF16], NULL, 0, a);
    outcome o = run_tool(a, out, errp, 600);
    char *err = (char *)qt_read(errp, NULL);
    int absent = o.exited && o.code != 0 && err && strstr(err, "RT_DEVICE");
    free(err);
    return absent;
}

/* ---- main loop ---- */

typedef struct result {
    verdict v;
    double secs;
} result;

static result results[sizeof(cells) / sizeof(cells[0])];

static void describe(const cell *c, char *buf, size_t cap)
{
    if (c->kind == K_VALUE)
        qt_fmt(buf, cap, "%-5s %-24s %-13s %s", fix_name[c->fix], c->cls, fault_name[c->fault], c->tensor);
    else if (c->kind == K_CONFIG || c->kind == K_DCONFIG)
        qt_fmt(buf, cap, "%-5s %-24s %s = %s%s%s%s%s", fix_name[c->fix], c->cls, c->key, c->value, c->key2 ? ", " : "",
               c->key2 ? c->key2 : "", c->key2 ? " = " : "", c->key2 ? c->value2 : "");
    else
        qt_fmt(buf, cap, "%-5s %s", fix_name[c->fix], c->cls);
}

static void run_cell(size_t i)
{
    const cell *c = &cells[i];
    verdict *v = &results[i].v;
    memset(v, 0, sizeof(*v));
    char dir[700], model[800], out[800], errp[800], qout[800];
    qt_fmt(dir, sizeof(dir), "%s/cell-%03zu", root, i + 1);
    qt_fmt(model, sizeof(model), "%s/model", dir);
    qt_fmt(out, sizeof(out), "%s/stdout", dir);
    qt_fmt(errp, sizeof(errp), "%s/stderr", dir);
    qt_fmt(qout, sizeof(qout), "%s/out", dir);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mkdir(dir, 0755);
    if (c->kind >= K_E1025_RUN) {
        judge_special(c, dir, v);
    } else if (make_model(c, model) != 0) {
        qt_fmt(v->what, sizeof(v->what), "the test could not build this cell's model");
    } else {
        const char *a[40];
        tool_argv(c->tool, model, qout, c->fix == F_ART, a);
        outcome o = run_tool(a, out, errp, 600);
        char *err = (char *)qt_read(errp, NULL), *so = (char *)qt_read(out, NULL);
        if (c->kind == K_CONTROL) {
            if (!abnormal(&o, err, v)) {
                v->pass = o.code == 0;
                qt_fmt(v->what, sizeof(v->what), "exit %d%s", o.code, v->pass ? "" : " (want 0)");
                if (!v->pass) {
                    first_line(err, NULL, v->line, sizeof(v->line));
                    if (!strcmp(v->line, "(none)"))
                        first_line(so, "FAIL", v->line, sizeof(v->line));
                }
            }
        } else {
            judge_refusal(&o, so, err, c->named, c->kind != K_VALUE, v);
        }
        free(err);
        free(so);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    results[i].secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    qt_rmtree(dir);
    char d[400];
    describe(c, d, sizeof(d));
    fprintf(stderr, "cell %3zu/%zu %-20s %s -> %s: %s (%.1f s)\n", i + 1, ncells, tool_name[c->tool], d,
            v->pass ? "PASS" : "FAIL", v->what, results[i].secs);
    if (!v->pass && v->line[0])
        fprintf(stderr, "           %s\n", v->line);
    th_checks++;
    if (!v->pass)
        th_failures++;
}

/* ---- setup ---- */

static int open_fixture(int f)
{
    lq_error err;
    char buf[1400];
    if (lq_ckpt_open(fix_dir[f], NULL, &fix_ck[f], &err) != LQ_OK) {
        fprintf(stderr, "test_hostile: %s: %s\n", fix_dir[f], lq_error_format(&err, buf, sizeof(buf)));
        return -1;
    }
    char d[800];
    qt_fmt(d, sizeof(d), "%s/dflash", fix_dir[f]);
    if (qt_is_dir(d) && lq_ckpt_open(d, NULL, &fix_dck[f], &err) != LQ_OK) {
        fprintf(stderr, "test_hostile: %s: %s\n", d, lq_error_format(&err, buf, sizeof(buf)));
        return -1;
    }
    /* The offsets used for patching come from 8 + header length + begin: check one against the
     * reader's own pointer. */
    lq_ckpt_tensor t = lq_ckpt_at(fix_ck[f], 0);
    located loc;
    uint8_t b[8] = {0};
    size_t n = t.info->nbytes < 8 ? (size_t)t.info->nbytes : 8;
    if (locate(f, 0, t.info->name, &loc) != 0 || pread_at(qt_p("%s/%s", fix_dir[f], loc.rel), loc.off, b, n) != 0 ||
        memcmp(b, lq_st_data(t.file, t.info), n) != 0) {
        fprintf(stderr, "test_hostile: %s: tensor offsets do not match the reader's\n", fix_dir[f]);
        return -1;
    }
    return 0;
}

static int setup(void)
{
    for (int f = 0; f < F_N; f++)
        qt_fmt(fix_dir[f], sizeof(fix_dir[f]), "%s/fixture-%s", root, fix_name[f]);
    qt_run_opts quiet = {.timeout_s = 600};
    int rc = qt_runl(&quiet, MK, "--preset", "tiny", "--variant", "bf16", "--out", fix_dir[F_BF16], "--tokenizer",
                     TOKENIZER, "-q", (char *)NULL);
    rc = rc ? rc : qt_runl(&quiet, MK, "--preset", "tiny", "--variant", "fp8", "--out", fix_dir[F_FP8], "--tokenizer",
                           TOKENIZER, "-q", (char *)NULL);
    rc = rc ? rc : qt_runl(&quiet, QUANT, fix_dir[F_FP8], fix_dir[F_ART], "--max-shard-size", "4M", "-q", (char *)NULL);
    rc = rc ? rc : qt_runl(&quiet, MK, "--preset", "tiny", "--variant", "bf16", "--out", fix_dir[F_E1025],
                           "--experts", "1025", "--layers", "2", "--no-drafter", "--tokenizer", TOKENIZER, "-q",
                           (char *)NULL);
    if (rc != 0) {
        fprintf(stderr, "test_hostile: making the fixtures failed (exit %d)\n", rc);
        return -1;
    }
    for (int f = 0; f < F_N; f++)
        if (open_fixture(f) != 0)
            return -1;
    qt_fmt(text_file, sizeof(text_file), "%s/text.txt", root);
    static const char text[] =
        "The quick brown fox jumps over the lazy dog. A checkpoint that holds one bad value must be\n"
        "refused when it is opened, with the tensor named, and never crash the tool that reads it.\n";
    qt_fmt(policy_file, sizeof(policy_file), "%s/policy.json", root);
    /* The default policy's thresholds and required checks, a model section small enough for a
     * matrix cell (one prompt of 4 tokens, 2 sampled, no DFlash pass). */
    static const char policy[] =
        "{\"schema_version\": 1, \"required\": [\"manifest\", \"integrity\", \"container\", \"tensors\", "
        "\"inventory\"], \"thresholds\": {\"min_sqnr_db\": 17.0, \"min_cosine\": 0.99, \"max_clip_frac\": 0.05, "
        "\"min_layer_sqnr_db\": 17.5, \"min_top1_agreement\": 0.9, \"max_mean_kl\": 1e-05, \"max_kl\": 2.5e-05, "
        "\"max_ppl_ratio\": 1.005, \"min_layer_hidden_cosine\": 0.9999, \"min_dflash_tau_ratio\": 0.9}, "
        "\"model\": {\"prompts\": 1, \"prompt_length\": 4, \"continuation_length\": 2, \"dflash_tokens\": 0}}\n";
    if (qt_write(text_file, text, sizeof(text) - 1) != 0 || qt_write(policy_file, policy, sizeof(policy) - 1) != 0)
        return -1;
    if (make_special_models() != 0) {
        fprintf(stderr, "test_hostile: could not build the 1025-expert and n_group models\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: test_hostile MKFIXTURE QUANTIZE RUN EVAL VERIFY TOKENIZER_JSON\n");
        return 2;
    }
    MK = argv[1], QUANT = argv[2], RUN = argv[3], EVAL = argv[4], VERIFY = argv[5], TOKENIZER = argv[6];
    DEVICE = argc > 7 ? argv[7] : NULL;
    if (qt_mkroot(root, sizeof(root)) != 0) {
        fprintf(stderr, "test_hostile: cannot make a scratch directory\n");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    build_matrix();
    if (DEVICE) { /* the runtime's cells only */
        size_t k = 0;
        for (size_t i = 0; i < ncells; i++)
            if (cells[i].tool == T_RUN || cells[i].tool == T_RUN_D || cells[i].tool == T_EVAL)
                cells[k++] = cells[i];
        ncells = k;
    }
    int per_tool[T_N] = {0};
    for (size_t i = 0; i < ncells; i++)
        per_tool[cells[i].tool]++;
    fprintf(stderr, "hostile matrix: %zu cells (", ncells);
    for (int t = 0; t < T_N; t++)
        fprintf(stderr, "%s%s %d", t ? ", " : "", tool_name[t], per_tool[t]);
    fprintf(stderr, ")\n");
    if (setup() != 0) {
        TH_REPORT("setup failed");
    } else {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fprintf(stderr, "fixtures ready in %.1f s\n",
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
        if (DEVICE && device_absent()) {
            qt_rmtree(root);
            printf("skipped: mimo-run --device %s finds no device\n", DEVICE);
            return 77;
        }
        for (size_t i = 0; i < ncells; i++)
            run_cell(i);
    }
    for (int f = 0; f < F_N; f++) {
        lq_ckpt_close(fix_ck[f]);
        lq_ckpt_close(fix_dck[f]);
    }
    qt_rmtree(root);

    size_t failed = 0;
    int fail_tool[T_N] = {0};
    for (size_t i = 0; i < ncells; i++)
        if (!results[i].v.pass) {
            failed++;
            fail_tool[cells[i].tool]++;
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "\nhostile matrix: %zu cells, %zu passed, %zu failed (", ncells, ncells - failed, failed);
    for (int t = 0; t < T_N; t++)
        fprintf(stderr, "%s%s %d/%d", t ? ", " : "", tool_name[t], fail_tool[t], per_tool[t]);
    fprintf(stderr, " failed), %.1f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    if (failed) {
        fprintf(stderr, "failing cells:\n");
        for (size_t i = 0; i < ncells; i++) {
            if (results[i].v.pass)
                continue;
            char d[400];
            describe(&cells[i], d, sizeof(d));
            fprintf(stderr, "  %3zu %-20s %s: %s\n", i + 1, tool_name[cells[i].tool], d, results[i].v.what);
        }
    }
    return th_finish("test_hostile");
}
