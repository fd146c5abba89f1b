"""`make test-browser`: headless Chromium opens a leaderboard.html made by the real pipeline.

It trains a tiny sweep (three λ), certifies and attacks it, writes the leaderboard, then checks in
Debian's chromium (selenium + chromedriver) that:
- the table renders (rows, one cell per header);
- clicking a numeric column's header orders the rows numerically (ascending, then descending);
- every plot (<img>) has loaded;
- the summary table shows a certified column (`cert acc@…` / `cert mIoU@…`) and run names on one line;
- the console has no errors and the page makes no network request (only file: and data: URLs).
It also checks `reports/leaderboard.html` when a `make demo` has written one. Last, it proves that
the checks can fail: four broken copies of the page (a script error, an external image, no sort
script, no certified column) must each be rejected.

Exit 0: all passed. Exit 1: a check failed. Exit 0 with "SKIP:" when chromium/chromedriver or
selenium are missing and cannot be installed (not root, no apt).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

SPEC = textwrap.dedent(
    """
    name = "browser"
    [data]
    name = "shapes"
    n_train = 256
    n_test = 64
    image_size = 16
    seed = 0
    [sweep]
    models = ["mresnet18_tiny"]
    lams = [0, 1e-3, 1e-2]
    seeds = [0]
    [train]
    epochs = 1
    batch_size = 64
    optimizer = "adamw"
    lr = 3e-3
    reg_target = "A"
    """
)


class CheckFailed(Exception):
    pass


def ensure_browser() -> str | None:
    """None when chromium, chromedriver and selenium are usable, else why not (a skip reason)."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return "chromium/chromedriver missing and cannot be installed here (not root or no apt-get)"
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:  # stale package lists: update once and retry
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise CheckFailed(
                "apt-get install chromium chromium-driver failed: " + res.stderr.strip()[-300:]
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in the dev extra: make setup)"
    return None


def rlip(*args: str, cwd: Path) -> None:
    cmd = [sys.executable, "-m", "robustbench_lip", *args]
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise CheckFailed(
            f"{' '.join(args[:2])} failed: {(res.stderr or res.stdout).strip()[-400:]}"
        )


def build_report(work: Path) -> Path:
    """A leaderboard.html from a tiny real sweep (train, certify, attack, leaderboard)."""
    spec = work / "browser.toml"
    spec.write_text(SPEC)
    runs = work / "runs"
    rlip("zoo", "train", str(spec), "--runs-dir", str(runs), cwd=work)
    rlip("certify", "--runs-dir", str(runs), "--n", "16", cwd=work)
    rlip(
        "attack",
        "--runs-dir",
        str(runs),
        "--eps",
        "8/255",
        "--attack",
        "pgd",
        "--n",
        "16",
        "--steps",
        "2",
        cwd=work,
    )
    rlip("leaderboard", "--runs-dir", str(runs), "--out", str(work / "reports"), cwd=work)
    return work / "reports" / "leaderboard.html"


def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _num(v: str | None) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:
        return None


def _column(drv, table, col: int) -> list[str | None]:
    return drv.execute_script(
        "var t=arguments[0], c=arguments[1]; return Array.prototype.map.call(t.tBodies[0].rows,"
        " function(r){var x=r.cells[c];"
        " return x ? (x.getAttribute('data-v') ?? x.textContent.trim()) : null;});",
        table,
        col,
    )


def check_table_and_sort(drv) -> str:
    from selenium.webdriver.common.by import By

    tables = drv.find_elements(By.CSS_SELECTOR, "table")
    if not tables:
        raise CheckFailed("no <table> rendered")
    table = tables[0]
    heads = drv.execute_script(
        "var h=arguments[0].tHead;"
        " return h ? Array.prototype.slice.call(h.rows[h.rows.length-1].cells) : [];",
        table,
    )
    n_rows = drv.execute_script("return arguments[0].tBodies[0].rows.length;", table)
    if not heads or n_rows < 2:
        raise CheckFailed(
            f"table has {len(heads)} header cells and {n_rows} rows (want ≥ 1 and ≥ 2)"
        )
    widths = drv.execute_script(
        "return Array.prototype.map.call(arguments[0].tBodies[0].rows,"
        " function(r){return r.cells.length;});",
        table,
    )
    if any(w != len(heads) for w in widths):
        raise CheckFailed(f"rows have {sorted(set(widths))} cells for {len(heads)} headers")
    # a numeric column with distinct values whose text order differs from numeric order, if any
    best = None
    for col in range(1, len(heads)):
        vals = [_num(v) for v in _column(drv, table, col)]
        nums = [v for v in vals if v is not None]
        if len(set(nums)) < 2 or len(nums) < len(vals) - 1:
            continue
        lexi = sorted(nums, key=lambda v: repr(v)) != sorted(nums)
        if best is None or (lexi and not best[1]):
            best = (col, lexi)
    if best is None:
        raise CheckFailed("no numeric column with distinct values to sort")
    col = best[0]
    name = heads[col].text.strip()
    for direction in ("ascending", "descending"):
        drv.execute_script("arguments[0].click();", heads[col])
        got = [_num(v) for v in _column(drv, table, col)]
        nums = [v for v in got if v is not None]
        want = sorted(nums, reverse=direction == "descending")
        if nums != want:
            raise CheckFailed(f"clicking {name!r} did not sort it numerically {direction}: {nums}")
    return name


def check_images(drv) -> int:
    bad = drv.execute_script(
        "return Array.prototype.filter.call(document.images, function(i){"
        " return !(i.complete && i.naturalWidth > 0);}).map(function(i){return i.src.slice(0, 60);});"
    )
    if bad:
        raise CheckFailed(f"{len(bad)} plot(s) did not load: {bad}")
    return int(drv.execute_script("return document.images.length;"))


def check_fit(drv) -> str:
    """The first (summary) table fits the 1400 px window, or scrolls inside its own box with a
    sticky first column; the page itself never scrolls sideways."""
    info = drv.execute_script(
        "var t=document.querySelector('table'), box=t.parentElement, c=t.tBodies[0].rows[0].cells[0];"
        " return {page: document.documentElement.scrollWidth, view: window.innerWidth,"
        " table: t.scrollWidth, pos: getComputedStyle(c).position,"
        " groups: t.tHead.rows.length};"
    )
    if info["page"] > info["view"]:
        raise CheckFailed(f"the page is {info['page']} px wide in a {info['view']} px window")
    if info["table"] > info["view"] and info["pos"] != "sticky":
        raise CheckFailed(f"the summary table is {info['table']} px wide and its first column is not sticky")
    fits = "fits" if info["table"] <= info["view"] else "scrolls with a sticky first column"
    return f"summary table {info['table']} px in {info['view']} px ({fits}), {info['groups']} header row(s)"


def check_summary(drv) -> str:
    """The summary (first) table shows a certified column (`cert acc@…` / `cert mIoU@…`, the
    column's full name in its header's title) with a value in some row, and every run name in its
    first column is one line (never wrapped)."""
    info = drv.execute_script(
        "var t=document.querySelector('table'), h=t.tHead.rows[t.tHead.rows.length-1].cells, cert=[];"
        " for (var i=0;i<h.length;i++){var n=(h[i].getAttribute('title')||'').split(':')[0];"
        "  if (/^cert (acc|mIoU)@/.test(n)) cert.push([n, Array.prototype.filter.call(t.tBodies[0].rows,"
        "   function(r){return r.cells[i].textContent.trim() !== '';}).length]);}"
        " var wrapped=Array.prototype.filter.call(t.tBodies[0].rows, function(r){"
        "  var g=document.createRange(); g.selectNodeContents(r.cells[0]); var tops={};"
        "  Array.prototype.forEach.call(g.getClientRects(), function(x){tops[Math.round(x.top)]=1;});"
        "  return Object.keys(tops).length > 1;}).map(function(r){return r.cells[0].textContent;});"
        " return {cert: cert, wrapped: wrapped};"
    )
    filled = [name for name, n in info["cert"] if n > 0]
    if not filled:
        raise CheckFailed(f"the summary has no certified column with a value (found {info['cert']})")
    if info["wrapped"]:
        raise CheckFailed(f"run names wrap over several lines in the summary: {info['wrapped'][:3]}")
    return f"summary shows {', '.join(filled)}, run names on one line"


def check_logs(drv) -> None:
    errors = [e["message"] for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
    if errors:
        raise CheckFailed(f"console errors: {errors[:3]}")
    urls = []
    for entry in drv.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if not url.startswith(("file:", "data:", "about:")):
                urls.append(url)
    if urls:
        raise CheckFailed(f"network requests: {urls[:3]}")


def check_page(html: Path) -> str:
    drv = driver()
    try:
        drv.get(html.resolve().as_uri())
        images = check_images(drv)
        fit = check_fit(drv)
        summary = check_summary(drv)
        column = check_table_and_sort(drv)
        check_logs(drv)
    finally:
        drv.quit()
    return (
        f"{fit}; {summary}; table ok, sorted {column!r} numerically both ways, {images} plot(s) loaded,"
        " no console errors or network"
    )


def broken_copies(html: Path, work: Path) -> dict[str, Path]:
    """Four deliberately broken versions of the page, each of which the checks must reject."""
    text = html.read_text(encoding="utf-8")
    out = {}
    variants = {
        "script error": text.replace("</body>", "<script>notDefinedAnywhere();</script></body>", 1),
        "external image": text.replace(
            "</body>", '<img src="http://127.0.0.1:9/plot.png"></body>', 1
        ),
        "no sort script": text.replace("addEventListener('click'", "addEventListener('dblclick'"),
        "no certified column": text.replace('title="cert ', 'title="uncert '),
    }
    for name, body in variants.items():
        if body == text:
            raise CheckFailed(f"could not build the {name!r} variant: the page changed shape")
        p = work / f"broken-{name.replace(' ', '-')}.html"
        p.write_text(body, encoding="utf-8")
        out[name] = p
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--html", type=Path, action="append", help="check this page instead of building one"
    )
    args = ap.parse_args()
    try:
        skip = ensure_browser()
        if skip:
            print(f"SKIP: {skip}")
            return 0
        with tempfile.TemporaryDirectory(prefix="rlip-browser-") as tmp:
            work = Path(tmp)
            pages = list(args.html or [])
            if not pages:
                pages.append(build_report(work))
                demo = ROOT / "reports" / "leaderboard.html"
                if demo.is_file():
                    pages.append(demo)
            for page in pages:
                print(f"{page}: {check_page(page)}")
            for name, page in broken_copies(pages[0], work).items():
                try:
                    check_page(page)
                except CheckFailed as e:
                    print(f"broken page ({name}) rejected as it should be: {str(e)[:100]}")
                else:
                    raise CheckFailed(f"the broken page ({name}) passed the checks")
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print("browser checks passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
