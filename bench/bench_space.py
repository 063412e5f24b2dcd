"""Benchmark of the Space viewer (issue 5) on the MiniLM demo results: 6 layers x 1536 neurons, 3 stages.

Measures (on this machine):
- ready: `build_demo(folder)` (results opened, indices built) + `demo.launch()` until the page is served and the first
  Open call answers over HTTP (target < 5 s); also the first Overview (four matplotlib figures) and a cold start
  of `hf-txray view` in a new process (imports included);
- switching neuron: the Neuron tab's whole server handler (stats, Hellinger, chart data, highlighted examples,
  tables) for 50 random neurons (target < 300 ms), and 10 through HTTP;
- search: "which neurons prefer X" by token, word and POS tag, by status and by Hellinger range (target < 500 ms);
- the Live text tab (issue 15): winners of a 100-token text at one layer with the model loaded (target < 1 s), as a
  ratio to a bare forward pass of the model on the same text measured in the same run; and the neuron page's extra
  sections (summary, output effects, histogram). `--live-only` measures just these on a small results folder
  (bench/_out/space_live_minilm) and rewrites the "## Space live text" section.

The results are made once with `hf_txray.analyze` on the embedded MiniLM (`hf_txray.corpora.default_model_path()`)
and saved with `hf_txray.save_to_disk` under bench/_out/space_minilm (reused by later runs; `--rebuild` remakes them):
stages `pretrained-ptb` (Penn Treebank train), `zeroshot-bbc` (BBC News), `ptb-valid` (Penn Treebank valid), and the
three reports between them. Usage:
    python bench/bench_space.py [--ptb 1000] [--bbc 100] [--rebuild] [--prepare-only]
Prints the figures and rewrites the "## Space viewer" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import update_section  # noqa: E402

OUT = ROOT / "bench" / "_out" / "space_minilm"
FEATURES = ("token", "word", "pos")


def prepare(folder: Path, ptb: int, bbc: int) -> Path:
    """Profile MiniLM on three corpora, compare the stages pairwise, save the export folder."""
    import hf_txray
    from hf_txray import corpora

    model = corpora.default_model_path()
    run = lambda data, stage, length: hf_txray.analyze(  # noqa: E731
        model, data, features=FEATURES, max_length=length, batch_size=32, stage=stage,
        model_id=corpora.DEFAULT_MODEL_ID, show_progress=False)
    stages = [run(corpora.penn_treebank("train", num_samples=ptb), "pretrained-ptb", 64),
              run(corpora.bbc_news(num_samples=bbc), "zeroshot-bbc", 128),
              run(corpora.penn_treebank("valid", num_samples=ptb), "ptb-valid", 64)]
    reports = [hf_txray.compare(stages[0], stages[1]), hf_txray.compare(stages[1], stages[2]),
               hf_txray.compare(stages[0], stages[2])]
    return hf_txray.save_to_disk(folder, stages, reports, plots=False)


def _ms(values: list[float]) -> str:
    return f"median {1000 * statistics.median(values):.0f} ms, max {1000 * max(values):.0f} ms"


def _wait_for(url: str, timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            if time.perf_counter() > deadline:
                raise
            time.sleep(0.05)


def cold_start(folder: Path, port: int = 7931) -> dict[str, float]:
    """`hf-txray view FOLDER --port PORT` in a new process: seconds until the page is served and until the first
    Open call (results loaded) answers, imports of torch and gradio included."""
    from gradio_client import Client

    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "hf_txray.cli", "view", str(folder), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(url)
        page = time.perf_counter() - start
        Client(url, verbose=False).predict(str(folder), api_name="/open")
        return {"cold_page": page, "cold_ready": time.perf_counter() - start}
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure(folder: Path, samples: int = 50) -> dict[str, list[float] | float]:
    import numpy as np
    from gradio_client import Client

    from hf_txray import viewer

    t = time.perf_counter()
    space_app = viewer.load_app()  # imports gradio (hf_txray is imported already)
    out: dict[str, list[float] | float] = {"import_app": time.perf_counter() - t}
    viewer.forget_opened()  # build_demo reads the results from disk, as a fresh Space does
    start = time.perf_counter()
    demo = space_app.build_demo(str(folder))  # opens the results (parquet -> Profiles -> indices)
    out["build"] = time.perf_counter() - start
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        _wait_for(url)
        out["page"] = time.perf_counter() - start
        client = Client(url, verbose=False)
        opened = client.predict(str(folder), api_name="/open")
        out["ready"] = time.perf_counter() - start
        report, ft = opened[3]["value"], opened[4]["value"]
        client.predict(report, ft, api_name="/overview")
        out["overview_ready"] = time.perf_counter() - start
        view = viewer.open_results(str(folder))
        stages = view.stages
        rng = np.random.default_rng(0)
        layers, neurons = rng.choice(view.layers, samples), rng.integers(0, view.num_neurons, samples)
        times = []
        for layer, neuron in zip(layers, neurons):  # the Neuron tab's whole handler, as the UI calls it
            t = time.perf_counter()
            space_app.show_neuron(str(folder), int(layer), int(neuron), stages[0], stages[1])
            times.append(time.perf_counter() - t)
        out["neuron"] = times
        times = []
        for layer, neuron in list(zip(layers, neurons))[:10]:  # through HTTP, for reference
            t = time.perf_counter()
            client.predict(int(layer), int(neuron), stages[0], stages[1], api_name="/neuron")
            times.append(time.perf_counter() - t)
        out["neuron_http"] = times
        token_stats = view.stats(stages[0])
        queries = [("token", v) for v in token_stats["top_token"].dropna().unique()[:10]]
        queries += [("word", v) for v in token_stats["top_word"].dropna().unique()[:10]]
        queries += [("pos", v) for v in ("NOUN", "VERB", "ADP", "DET", "PROPN")]
        for by in ("probability", "mass"):
            times = []
            for feature_type, value in queries:
                t = time.perf_counter()
                space_app.search_feature(str(folder), stages[0], feature_type, value, by, 1, 50)
                times.append(time.perf_counter() - t)
            out[f"search_{by}"] = times
        report = view.report_names[0]
        times = []
        for status in ("lost", "gained", "shared", "dead"):
            t = time.perf_counter()
            space_app.search_status(str(folder), report, status)
            times.append(time.perf_counter() - t)
        out["search_status"] = times
        times = []
        for low, high in ((0.0, 0.2), (0.4, 0.6), (0.8, 1.0)):
            t = time.perf_counter()
            space_app.search_hellinger(str(folder), report, "pos", low, high)
            times.append(time.perf_counter() - t)
        out["search_hellinger"] = times
        times = []
        for which in ("most", "least"):
            t = time.perf_counter()
            space_app.show_transfer(str(folder), report, "pos", which, 5, 25)
            times.append(time.perf_counter() - t)
        out["transfer"] = times
    finally:
        demo.close()
    return out


LIVE_OUT = ROOT / "bench" / "_out" / "space_live_minilm"
LIVE_TOKENS = 100


def text_of_tokens(tokenizer, n: int) -> str:
    """A Penn Treebank passage cut after its `n`-th token (special tokens not counted)."""
    from hf_txray import corpora

    text = " ".join(corpora.penn_treebank("valid", num_samples=60)["text"])
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return text[: offsets[n - 1][1]]


def measure_live(folder: Path, runs: int = 20) -> dict[str, list[float] | int]:
    """The Live text tab's handler on a 100-token text (each layer in turn) against a bare forward pass."""
    import torch
    from gradio_client import Client

    from hf_txray import corpora, viewer

    space_app = viewer.load_app()
    model_path = corpora.default_model_path()
    demo = space_app.build_demo(str(folder), model=model_path)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    out: dict[str, list[float] | int] = {}
    try:
        _wait_for(url)
        view = viewer.open_results(str(folder))
        attribution = space_app.AttributionModel(model_path)
        net, tokenizer = attribution.get()
        text = text_of_tokens(tokenizer, LIVE_TOKENS)
        first = space_app.live_text(str(folder), text, view.layers[0], 5, attribution)  # warm-up (hooks, caches)
        out["tokens"] = len(first[3])
        inputs = tokenizer(text, return_tensors="pt")
        times, forward = [], []
        for i in range(runs):
            layer = view.layers[i % len(view.layers)]
            t = time.perf_counter()
            with torch.no_grad():
                net(**inputs)
            forward.append(time.perf_counter() - t)
            t = time.perf_counter()
            space_app.live_text(str(folder), text, layer, 5, attribution)
            times.append(time.perf_counter() - t)
        out["live"], out["forward"] = times, forward
        client = Client(url, verbose=False)
        client.predict(str(folder), api_name="/open")
        times = []
        for i in range(5):
            t = time.perf_counter()
            client.predict(text, view.layers[i % len(view.layers)], 5, api_name="/live_text")
            times.append(time.perf_counter() - t)
        out["live_http"] = times
        stages = view.stages
        times = []
        for layer in view.layers:
            for neuron in (0, 100, 1000):
                t = time.perf_counter()
                space_app.show_neuron_page(str(folder), layer, neuron, stages[0], stages[-1])
                times.append(time.perf_counter() - t)
        out["page"] = times
    finally:
        demo.close()
    return out


def live_rows(r: dict) -> list[tuple[str, str, str, str]]:
    median = statistics.median
    ratio = median(r["live"]) / median(r["forward"])
    return [
        (f"Live text tab, server time: winners of a {r['tokens']}-token text at one layer plus one traced neuron "
         f"({len(r['live'])} runs over the layers; MiniLM, CPU)", _ms(r["live"]), "< 1 s (median)",
         "yes" if median(r["live"]) < 1 else "**no**"),
        ("... bare forward pass of the model on the same text (baseline, same run)", _ms(r["forward"]), "", ""),
        ("... ratio live tab / bare forward pass (medians)", f"{ratio:.2f}", "", ""),
        ("Live text tab, HTTP round trip through gradio_client (5 runs)", _ms(r["live_http"]), "< 1 s (median)",
         "yes" if median(r["live_http"]) < 1 else "**no**"),
        ("neuron page sections (summary, output effects, histogram, win rate), server time",
         _ms(r["page"]), "", ""),
    ]


def main_live(rebuild: bool, write: bool) -> None:
    import hf_txray
    from hf_txray import corpora

    if rebuild or not (LIVE_OUT / "meta").is_dir():
        a = hf_txray.analyze(corpora.default_model_path(), corpora.penn_treebank("train", num_samples=200),
                             features=("token", "pos"), max_length=64, stage="pretrained-ptb",
                             model_id=corpora.DEFAULT_MODEL_ID, show_progress=False)
        hf_txray.save_to_disk(LIVE_OUT, [a], plots=False)
    load_before = os.getloadavg()[0]
    r = measure_live(LIVE_OUT)
    load_after = os.getloadavg()[0]
    table = "| measure | result | target | met |\n| --- | --- | --- | --- |\n"
    table += "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in live_rows(r))
    body = (
        f"`python bench/bench_space.py --live-only` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores shared with other work (load average {load_before:.1f} before, "
        f"{load_after:.1f} after), no GPU; the embedded MiniLM (6 layers x 1536 neurons) given to the viewer as "
        f"its model; results: 200 Penn Treebank sentences.\n\n{table}\n\n"
        "The live tab runs the profiling engine (`build_batch` + `WinnerRecorder` hooks, the credit rule of "
        "`analyze`) on the typed text: one forward pass, the winners reduced on the device. Its cost is the "
        "ratio to a bare forward pass; the absolute times follow the machine's load (on a shared machine the bare "
        "forward pass alone can take most of the second)."
    )
    print(body)
    if write:
        update_section("Space live text", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ptb", type=int, default=1000, help="Penn Treebank sentences per PTB stage.")
    parser.add_argument("--bbc", type=int, default=100, help="BBC News articles.")
    parser.add_argument("--rebuild", action="store_true", help="Profile again even when the results exist.")
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave bench/RESULTS.md alone.")
    parser.add_argument("--live-only", action="store_true", help="Measure only the Live text tab and the neuron "
                        "page sections, on a small results folder.")
    args = parser.parse_args()
    if args.live_only:
        main_live(args.rebuild, not args.no_write)
        return
    if args.rebuild or not (OUT / "meta").is_dir():
        t = time.perf_counter()
        prepare(OUT, args.ptb, args.bbc)
        print(f"results written to {OUT} in {time.perf_counter() - t:.0f} s")
    if args.prepare_only:
        return
    import hf_txray

    profiles, reports = hf_txray.load(OUT)
    first = next(iter(profiles.values()))
    load_before = os.getloadavg()[0]
    r = measure(OUT)
    r.update(cold_start(OUT))
    load_after = os.getloadavg()[0]
    verdict = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    rows = [
        ("app ready after launch: `build_demo(folder)` (results opened) + `launch()` + page served + first Open "
         "call answered (imports done)", f"{r['ready']:.2f} s (build {r['build']:.2f} s, page at {r['page']:.2f} s)",
         "< 5 s", verdict(r["ready"] < 5)),
        ("... and the Overview's four figures drawn (first time; cached after)", f"{r['overview_ready']:.2f} s", "",
         ""),
        ("cold start: `hf-txray view DIR` in a new process until the first Open call answers (imports of torch, "
         "transformers and gradio included)", f"{r['cold_ready']:.2f} s (page at {r['cold_page']:.2f} s)", "",
         ""),
        ("switching neuron, server time (50 random neurons: stats, Hellinger, chart data, highlighted examples, "
         "tables)", _ms(r["neuron"]), "< 300 ms", verdict(max(r["neuron"]) < 0.3)),
        ("switching neuron, HTTP round trip through gradio_client (10 neurons)", _ms(r["neuron_http"]), "", ""),
        ("search by token / word / POS, ranked by probability (25 queries)", _ms(r["search_probability"]),
         "< 500 ms", verdict(max(r["search_probability"]) < 0.5)),
        ("search by token / word / POS, ranked by mass (25 queries)", _ms(r["search_mass"]), "< 500 ms",
         verdict(max(r["search_mass"]) < 0.5)),
        ("search by status (4)", _ms(r["search_status"]), "< 500 ms", verdict(max(r["search_status"]) < 0.5)),
        ("search by Hellinger range (3)", _ms(r["search_hellinger"]), "< 500 ms",
         verdict(max(r["search_hellinger"]) < 0.5)),
        ("Transfer tab: most / least changed", _ms(r["transfer"]), "", ""),
    ]
    table = "| measure | result | target | met |\n| --- | --- | --- | --- |\n"
    table += "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    sizes = ", ".join(f"`{s}` {p.meta.num_examples} texts / {p.meta.num_positions} positions"
                      for s, p in profiles.items())
    body = (
        f"`python bench/bench_space.py` on {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
        f"shared with other work (load average {load_before:.1f} before the run, {load_after:.1f} after), no GPU; "
        f"gradio {__import__('gradio').__version__}. Results: MiniLM "
        f"(`{first.meta.model_id}`), {len(first.layers)} layers x {first.num_neurons} neurons, features "
        f"{', '.join(first.feature_types)}, {len(profiles)} stages ({sizes}), {len(reports)} reports; loaded from "
        f"the export folder (`hf_txray.save_to_disk`).\n\n{table}\n\n"
        "Server times are the Python handlers of `spaces_app/app.py` as the UI calls them (`show_neuron`, "
        "`search_feature`, ...). The per-neuron bar charts are Vega-Lite data drawn by the browser, so a switch "
        "sends no image; opening results builds per-stage indices once (neuron stats, row totals, example "
        "offsets), so a switch or a search only slices arrays. The machine is shared with other work: figures "
        "are from one run and include that noise."
    )
    print(body)
    if not args.no_write:
        update_section("Space viewer", body)
    main_live(args.rebuild, not args.no_write)


if __name__ == "__main__":
    main()
