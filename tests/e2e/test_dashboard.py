"""The dashboard in headless Chromium against the whole stack: devnet, the real worker fleet
and the API process (``bulkhead api``). The page is loaded once; every later
change (heads moving, a new lock and its credit, a position opening, its margin ratio moving
with the price, its liquidation) must reach it without a reload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from bulkhead.local.fleet import WorkerFleet
from tests.integration.api.apiproc import running_api
from tests.support.chain import key_for
from tests.support.fleet import fleet  # noqa: F401 - the module's worker fleet
from tests.support.stack import Cli

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOT = ARTIFACTS / "dashboard.png"  # the position open, its ratio charted
AFTERWARDS = ARTIFACTS / "dashboard-liquidated.png"  # the same page after the crash
CHROMIUM = "/usr/bin/chromium"
RELOAD_MARK = "window.__bulkheadNoReload"


@pytest.fixture(scope="module")
def api_url(devnet: dict[str, Any]) -> Iterator[str]:
    with running_api(devnet["home"]) as url:
        yield url


@pytest.fixture(scope="module")
def page(api_url: str) -> Iterator[Page]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1300})
            tab.goto(f"{api_url}/dashboard")
            tab.evaluate(f"{RELOAD_MARK} = 42")  # a reload would wipe it
            yield tab
            tab.screenshot(path=str(AFTERWARDS), full_page=True)
        finally:
            browser.close()


def wait_js(page: Page, what: str, script: str, arg: Any = None, timeout_s: float = 60) -> None:
    """Wait until ``script`` is truthy in the page; on timeout save the screenshot and say
    where it is."""
    try:
        page.wait_for_function(script, arg=arg, timeout=timeout_s * 1000, polling=250)
    except Exception as exc:
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        raise AssertionError(f"dashboard never showed {what} ({exc}); screenshot: "
                             f"{SCREENSHOT}") from exc


def cell(page: Page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def test_dashboard_follows_the_stack_live(devnet: dict[str, Any], cli: Cli, api_url: str,
                                          page: Page, fleet: WorkerFleet) -> None:  # noqa: F811
    shot = f"screenshot: {SCREENSHOT}"
    wait_js(page, "three chains", "() => document.querySelectorAll("
            "'#chains-table tbody tr[data-chain][data-reachable=\"true\"]').length === 3")
    chains = page.eval_on_selector_all("#chains-table tbody tr",
                                       "rows => rows.map(r => r.dataset.chain)")
    assert sorted(chains) == ["evm-a", "evm-b", "solana"], shot
    head = int(cell(page, '#chains-table tr[data-chain="evm-a"] [data-field="latest"]'))
    wait_js(page, "evm-a's head advance",
            "h => Number(document.querySelector('#chains-table tr[data-chain=\"evm-a\"] "
            "[data-field=\"latest\"]').textContent) > h", head, 20)

    position = key_for(devnet, "alice", b"dashboard")
    lock = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "320",
                    "--position", position)
    row = f'#locks-table tr[data-tx="{lock["tx_id"]}"]'
    wait_js(page, "the new lock", f"() => !!document.querySelector('{row}')", timeout_s=60)
    wait_js(page, "the lock credited",
            f"() => document.querySelector('{row}')?.dataset.state === 'credited'",
            timeout_s=180)
    assert "320" in cell(page, f'{row} [data-field="amount"]'), shot
    assert int(page.get_attribute('#pipeline li[data-state="credited"]', "data-count") or 0) >= 1

    cli.json("price", "--market", "ETH-USD", "--set", "3000")
    cli.json("price", "--market", "USDC", "--set", "1")
    cli.json("trade", "open", "--position", position, "--size", "1")
    prow = f'#positions-table tr[data-position="{position}"]'
    wait_js(page, "the open position", f"() => !!document.querySelector('{prow}')", timeout_s=30)
    ratio = cell(page, f'{prow} [data-field="margin_ratio"]')
    liq_price = cell(page, f'{prow} [data-field="liquidation_price"]')
    assert float(liq_price) > 0 and float(ratio) > 1, shot  # display strings, not money

    cli.json("price", "--market", "ETH-USD", "--set", "2950")
    wait_js(page, "the margin ratio move with the price",
            f"r => document.querySelector('{prow} [data-field=\"margin_ratio\"]')"
            "?.textContent !== r", ratio, 30)
    wait_js(page, "chart samples", "() => Number(document.querySelector('#margin-chart')"
            ".dataset.samples) >= 3", timeout_s=15)

    page.screenshot(path=str(SCREENSHOT), full_page=True)

    cli.json("price", "--market", "ETH-USD", "--set", "1650")  # far below its liq. price
    lrow = f'#liquidations-table tr[data-position="{position}"][data-kind="liquidation"]'
    wait_js(page, "the liquidation", f"() => !!document.querySelector('{lrow}')", timeout_s=120)

    assert page.evaluate(RELOAD_MARK) == 42, f"the page reloaded; {shot}"
    assert int(page.get_attribute("#last-update", "data-polls") or 0) > 5, shot
    families = {f.name: f for f in text_string_to_metric_families(
        httpx.get(f"{api_url}/metrics", timeout=15).text)}
    count = [s.value for s in families["bulkhead_lock_to_credit_seconds"].samples
             if s.name.endswith("_count") and s.labels["chain"] == "evm-a"]
    assert count and count[0] >= 1
    liquidations = sum(s.value for s in families["bulkhead_liquidations"].samples)
    assert liquidations >= 1
