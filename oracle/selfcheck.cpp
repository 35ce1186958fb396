#include "oracle/selfcheck.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <boost/multiprecision/cpp_bin_float.hpp>

#include "engine/case/case_sampler.hpp"
#include "engine/case/problem.hpp"
#include "oracle/naive_attention.hpp"
#include "oracle/parity.hpp"
#include "oracle/reference_attention.hpp"
#include "oracle/tiled_reference.hpp"

namespace attncheck {

using mp50 = boost::multiprecision::cpp_bin_float_50;

namespace {

Case small_case(int hq, int hkv, int d, int q_len, int kv_len, std::uint64_t seed) {
    Case c;
    c.n_q_heads = hq;
    c.n_kv_heads = hkv;
    c.head_dim = d;
    c.q_lens = {q_len};
    c.kv_lens = {kv_len};
    c.data.seed = seed;
    return c;
}

double rel_diff(double a, double b) {
    if (a == b) return 0.0; // covers -inf == -inf
    return std::fabs(a - b) / std::max({std::fabs(a), std::fabs(b), 1e-300});
}

} // namespace

double max_rel(const AttentionProblem& pb, const ReferenceOutput& a, const ReferenceOutput& b) {
    double worst = 0;
    for (int s = 0; s < pb.batch(); ++s)
        for (int t = 0; t < pb.q_lens[s]; ++t)
            for (int h = 0; h < pb.n_q_heads; ++h) {
                const long long oi = pb.o_index(s, t, h), li = pb.lse_index(s, t, h);
                double vmax = 1e-300;
                for (int j = 0; j < pb.kv_lens[s]; ++j)
                    for (int c = 0; c < pb.head_dim; ++c)
                        vmax =
                            std::max(vmax, std::fabs(static_cast<double>(pb.v[pb.kv_index(s, j, h / pb.group()) + c])));
                for (int c = 0; c < pb.head_dim; ++c)
                    worst = std::max(worst, std::fabs(a.o[oi + c] - b.o[oi + c]) / vmax);
                worst = std::max(worst, rel_diff(a.lse[li], b.lse[li]));
            }
    return worst;
}

std::vector<ClosedFormResult> oracle_closed_forms() {
    std::vector<ClosedFormResult> out;
    auto add = [&](std::string name, bool pass, std::string detail) {
        out.push_back({std::move(name), pass, std::move(detail)});
    };
    { // one key: O is its V exactly, LSE is the scaled score
        Case c = small_case(2, 1, 16, 1, 1, 11);
        c.data.v_scale = 3.0;
        AttentionProblem pb = materialize(c);
        auto r = reference_attention<double>(pb);
        bool ok = true;
        for (int h = 0; h < 2; ++h)
            for (int ch = 0; ch < 16; ++ch) ok = ok && r.o[pb.o_index(0, 0, h) + ch] == pb.v[pb.kv_index(0, 0, 0) + ch];
        double s = 0;
        for (int ch = 0; ch < 16; ++ch) s += static_cast<double>(pb.q[ch]) * pb.k[ch];
        ok = ok && std::fabs(r.lse[0] - s * pb.scale) <= 1e-15 * std::max(1.0, std::fabs(s));
        add("one key -> its V exactly", ok, fmt::format("lse {} vs {}", r.lse[0], s * pb.scale));
    }
    { // equal logits (all keys identical): O is the mean of V, LSE = s + log n
        Case c = small_case(1, 1, 8, 1, 37, 12);
        c.data.constant_k = true;
        AttentionProblem pb = materialize(c);
        auto r = reference_attention<mp50>(pb);
        double worst = 0;
        for (int ch = 0; ch < 8; ++ch) {
            mp50 mean = 0;
            for (int j = 0; j < 37; ++j) mean += mp50(pb.v[pb.kv_index(0, j, 0) + ch]);
            mean /= 37;
            worst = std::max(worst, std::fabs(r.o[ch] - static_cast<double>(mean)));
        }
        mp50 s = 0;
        for (int ch = 0; ch < 8; ++ch) s += mp50(pb.q[ch]) * mp50(pb.k[ch]);
        double lse_expected = static_cast<double>(s * mp50(pb.scale) + log(mp50(37)));
        bool ok =
            worst <= 1e-15 && std::fabs(r.lse[0] - lse_expected) <= 1e-15 * std::max(1.0, std::fabs(lse_expected));
        add("equal logits -> mean of V, LSE = s + log n", ok, fmt::format("max |O - mean| {:.3g}", worst));
    }
    { // known LSE: keys with logits 0 and log 3 (scale 1): LSE = log 4, P = (1/4, 3/4)
        Case c = small_case(1, 1, 1, 1, 2, 13);
        c.scale = 1.0;
        c.values = ExplicitValues{{1.0}, {0.0, std::log(3.0)}, {2.0, -6.0}};
        c.values->k[1] = static_cast<float>(c.values->k[1]); // fp32 input, as the target sees it
        AttentionProblem pb = materialize(c);
        auto r = reference_row<mp50>(pb, 0, 0, 0);
        const mp50 e = exp(mp50(pb.k[1]));
        const double lse = static_cast<double>(log(1 + e));
        const double o = static_cast<double>((mp50(2) + e * mp50(-6)) / (1 + e));
        bool ok = std::fabs(static_cast<double>(r.lse) - lse) < 1e-30 + 1e-16 &&
                  std::fabs(static_cast<double>(r.o[0]) - o) < 1e-15 && std::fabs(lse - std::log(4.0)) < 1e-7;
        add("known LSE (log 4) and P = (1/4, 3/4)", ok,
            fmt::format("lse {:.17g} (log 4 = {:.17g}), o {:.17g}", static_cast<double>(r.lse), std::log(4.0), o));
    }
    { // GQA equals MHA with K/V heads repeated
        Case c = small_case(6, 2, 12, 3, 9, 14);
        c.causal = true;
        AttentionProblem gqa = materialize(c);
        AttentionProblem mha = gqa;
        mha.n_kv_heads = 6;
        mha.k.assign(static_cast<size_t>(9 * 6 * 12), 0.f);
        mha.v.assign(mha.k.size(), 0.f);
        for (int j = 0; j < 9; ++j)
            for (int h = 0; h < 6; ++h)
                for (int ch = 0; ch < 12; ++ch) {
                    mha.k[mha.kv_index(0, j, h) + ch] = gqa.k[gqa.kv_index(0, j, h / 3) + ch];
                    mha.v[mha.kv_index(0, j, h) + ch] = gqa.v[gqa.kv_index(0, j, h / 3) + ch];
                }
        auto a = reference_attention<double>(gqa), b = reference_attention<double>(mha);
        bool ok = a.o == b.o && a.lse == b.lse;
        add("GQA (6/2) equals MHA with repeated K/V heads (bitwise)", ok, "");
    }
    { // fully masked rows: q_len > kv_len, causal bottom-right: first rows see nothing
        Case c = small_case(1, 1, 4, 5, 2, 15);
        c.causal = true;
        AttentionProblem pb = materialize(c);
        auto r = reference_attention<double>(pb);
        auto t = tiled_reference_attention(pb);
        bool ok = true;
        for (int i = 0; i < 3; ++i) {
            ok = ok && r.lse[i] == -INFINITY && t.lse[i] == -INFINITY;
            for (int ch = 0; ch < 4; ++ch) ok = ok && r.o[i * 4 + ch] == 0.0 && t.o[i * 4 + ch] == 0.0;
        }
        ok = ok && std::isfinite(r.lse[3]) && std::isfinite(r.lse[4]);
        add("fully masked rows: O = 0, LSE = -inf (q_len 5 > kv_len 2, causal)", ok, "");
    }
    return out;
}

AgreementSweep sweep_reference_agreement(std::uint64_t first_seed, long long n_cases, int mp_every) {
    AgreementSweep s;
    for (long long i = 0; i < n_cases; ++i) {
        const std::uint64_t seed = first_seed + static_cast<std::uint64_t>(i);
        Case c = sample_well_conditioned_case(seed);
        c.causal = (i % 2) == 1;
        c.q_lens = {std::min(c.kv_lens[0] + 2, static_cast<int>(3 + i % 5))};
        if (c.causal && i % 3 == 0) c.window = static_cast<int>(1 + i % 7);
        AttentionProblem pb = materialize(c);
        ++s.cases;
        s.rows += pb.total_q() * pb.n_q_heads;
        const ReferenceOutput ref = reference_attention<double>(pb);
        const double dt = max_rel(pb, ref, tiled_reference_attention(pb, 1 + static_cast<int>(i % 17)));
        if (dt > s.max_rel_tiled) {
            s.max_rel_tiled = dt;
            s.worst_tiled_seed = seed;
        }
        if (mp_every > 0 && i % mp_every == 0) {
            const double dm = max_rel(pb, ref, reference_attention<mp50>(pb));
            if (dm > s.max_rel_mp) {
                s.max_rel_mp = dm;
                s.worst_mp_seed = seed;
            }
        }
    }
    return s;
}

namespace {

struct NamedProfile {
    std::string name;
    PrecisionProfile prof;
};

std::vector<NamedProfile> correct_profiles(DType t) {
    PrecisionProfile plain;
    plain.input = t;
    plain.exp_ulps = 2;
    PrecisionProfile storing = plain; // S, P and O stored in the input dtype
    storing.scores_stored = storing.probs_stored = true;
    storing.store = storing.output = t;
    return {{fmt::format("plain fp32 arithmetic ({} inputs)", dtype_name(t)), plain},
            {fmt::format("S, P, O stored in {}", dtype_name(t)), storing}};
}

} // namespace

ErrorModelSweep sweep_error_model(std::uint64_t first_seed, long long n_cases,
                                  const std::function<void(long long)>& progress) {
    ErrorModelSweep sw;
    // Two tallies: the plain computation and the storing one, over all dtypes.
    sw.correct.resize(2);
    sw.correct[0].profile = "plain fp32 arithmetic";
    sw.correct[1].profile = "S, P, O stored in the input dtype";
    std::vector<std::vector<double>> ratios(2);
    for (long long i = 0; i < n_cases; ++i) {
        if (progress) progress(i);
        const std::uint64_t seed = first_seed + static_cast<std::uint64_t>(i);
        const Case c = sample_wide_case(seed);
        const AttentionProblem pb = materialize(c);
        const ReferenceOutput ref = reference_attention<double>(pb);
        ++sw.cases;
        const auto profiles = correct_profiles(c.dtype);
        std::vector<Observation> obs;
        for (size_t k = 0; k < profiles.size(); ++k) {
            obs.push_back(naive_attention(pb, profiles[k].prof));
            const ParityReport rep = check_parity(pb, ref, obs.back(), profiles[k].prof);
            ProfileTally& t = sw.correct[k];
            const long long judged = rep.rows - rep.masked_rows - rep.out_of_range_rows - rep.nonfinite_input_rows;
            t.rows_judged += judged;
            t.rows_out_of_range += rep.out_of_range_rows;
            if (judged > 0) {
                ++t.cases;
                ratios[k].push_back(rep.o.worst_ratio);
            }
            t.worst_ratio = std::max({t.worst_ratio, rep.o.worst_ratio, rep.lse.worst_ratio});
            if (!rep.pass()) {
                if (t.false_alarms == 0) {
                    t.first_alarm_seed = seed;
                    t.first_alarm_detail =
                        fmt::format("[{}] {}\n{}", profiles[k].name, rep.summary(), case_to_json(c, -1));
                }
                ++t.false_alarms;
            }
        }
        if (c.dtype != DType::f32) { // FlashAttention-style relative check
            PrecisionProfile only_o = correct_profiles(c.dtype)[0].prof;
            only_o.output = c.dtype;
            const Observation target = naive_attention(pb, only_o);
            const RelativeCheck rc = relative_to_naive(pb, ref, target, obs[1], c.dtype);
            if (rc.judged) {
                ++sw.relative_checked;
                if (!rc.pass()) ++sw.relative_failures;
            }
        }
    }
    for (size_t k = 0; k < ratios.size(); ++k) {
        auto& r = ratios[k];
        if (!r.empty()) {
            std::nth_element(r.begin(), r.begin() + static_cast<long>(r.size() / 2), r.end());
            sw.correct[k].median_ratio = r[r.size() / 2];
        }
    }
    return sw;
}

DetectionSweep sweep_defect_detection(std::uint64_t first_seed, long long n_cases) {
    DetectionSweep s;
    PrecisionProfile plain;
    for (long long i = 0; i < n_cases; ++i) {
        const std::uint64_t seed = first_seed + static_cast<std::uint64_t>(i);
        const Case c = sample_well_conditioned_case(seed);
        const AttentionProblem pb = materialize(c);
        const ReferenceOutput ref = reference_attention<double>(pb);
        ++s.cases;
        auto note_miss = [&](const char* what, const ParityReport& rep) {
            if (s.first_missed_detail.empty()) {
                s.first_missed_seed = seed;
                s.first_missed_detail = fmt::format("{} not caught: {}\n{}", what, rep.summary(), case_to_json(c, -1));
            }
        };
        {
            const ParityReport rep =
                check_parity(pb, ref, naive_attention(pb, plain, NaiveDefect::scale_off_1pct), plain);
            ++s.scale_judged;
            if (!rep.pass())
                ++s.scale_caught;
            else
                note_miss("scale off by 1%", rep);
        }
        {
            // A key left out of the normalizer changes every probability of
            // its row by the factor 1 / (1 - p_dropped): detectable when that
            // key carries a fair share of the mass, p >= 1/(4n).
            auto row = reference_row<double>(pb, 0, 0, 0);
            if (row.p[0] >= 0.25 / row.n_visible) {
                ++s.drop_judged;
                const ParityReport rep =
                    check_parity(pb, ref, naive_attention(pb, plain, NaiveDefect::drop_key_from_normalizer), plain);
                if (!rep.pass())
                    ++s.drop_caught;
                else
                    note_miss("dropped key", rep);
            }
        }
        {
            PrecisionProfile p16; // fp16 variant of the case for the FA-style check
            Case c16 = c;
            c16.dtype = DType::f16;
            const AttentionProblem pb16 = materialize(c16);
            const ReferenceOutput ref16 = reference_attention<double>(pb16);
            p16.input = p16.store = p16.output = DType::f16;
            PrecisionProfile naive16 = p16;
            naive16.scores_stored = naive16.probs_stored = true;
            const RelativeCheck rc =
                relative_to_naive(pb16, ref16, naive_attention(pb16, p16, NaiveDefect::scale_off_1pct),
                                  naive_attention(pb16, naive16), DType::f16);
            if (!rc.pass()) ++s.relative_scale_caught;
        }
    }
    return s;
}

} // namespace attncheck
