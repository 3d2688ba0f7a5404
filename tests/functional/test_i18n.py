"""Every people's page in Chinese or English: the reader's choice, else Accept-Language, else
English. What goes on the wire (OAuth errors, the mobile and admin JSON APIs) stays English.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.functional.harness import Harness
from tests.functional.test_admin_console import ADMIN, ADMIN_PASSWORD, csrf_of
from tests.functional.test_pages import Browser, html_page

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
PAGE_TEXT = re.compile(r'<script type="application/json" id="page-text">(.*?)</script>', re.S)


@pytest.fixture
def backend(sqlite_url: str) -> tuple[str, str | None, str]:
    """The page's language does not depend on the stores: the embedded default only."""
    return sqlite_url, None, "x:"


def lang_of(html: str) -> str:
    found = re.search(r'<html lang="([^"]+)">', html)
    assert found, "no <html lang>"
    return found.group(1)


def chinese_browser(harness: Harness) -> Browser:
    browser = Browser(harness)
    browser.http.environ_base["HTTP_ACCEPT_LANGUAGE"] = ZH["Accept-Language"]
    return browser


# --- Choosing the language ------------------------------------------------------------------
def test_english_by_default(harness: Harness) -> None:
    html = html_page(harness.http.get(f"/login?client_id={harness.client_id}"), 200)
    assert lang_of(html) == "en"
    assert "Sign in to Test PC app" in html
    assert "Getting a sign-in code…" in html
    # The switch: the other language as a link, this one marked as current.
    assert '<span lang="en" aria-current="true">English</span>' in html
    assert 'hreflang="zh-CN">中文' in html


@pytest.mark.parametrize("header", ["zh-CN", "zh", "zh-Hans", "zh-SG", "zh-TW", "en;q=0.1, zh"])
def test_chinese_by_accept_language(harness: Harness, header: str) -> None:
    response = harness.http.get(
        f"/login?client_id={harness.client_id}", headers={"Accept-Language": header}
    )
    html = html_page(response, 200)
    assert lang_of(html) == "zh-CN"
    assert "登录 Test PC app" in html
    assert "正在获取登录码…" in html
    assert '<span lang="zh-CN" aria-current="true">中文' in html


@pytest.mark.parametrize("header", ["fr-FR", "en-GB,zh;q=0.1", "", "*"])
def test_english_for_other_languages(harness: Harness, header: str) -> None:
    response = harness.http.get("/device", headers={"Accept-Language": header})
    html = html_page(response, 200)
    assert lang_of(html) == "en"
    assert "Sign in on another device" in html


def test_the_switch_wins_over_accept_language_and_returns_to_the_page(harness: Harness) -> None:
    http = harness.http.application.test_client()
    page = f"/login?client_id={harness.client_id}"
    html = html_page(http.get(page, headers=ZH), 200)
    links = dict(re.findall(r'<a href="([^"]+)" lang="([^"]+)"', html))
    switch = next(url for url, tag in links.items() if tag == "en")
    assert switch.startswith("/lang/en?next=")

    response = http.get(switch.replace("&amp;", "&"), headers=ZH)
    assert response.status_code == 303
    assert response.location == page  # the same page, query and all
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=en;") and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get a Secure cookie
    assert response.headers["Cache-Control"] == "no-store"

    html = html_page(http.get(page, headers=ZH), 200)
    assert lang_of(html) == "en" and "Sign in to Test PC app" in html
    http.get("/lang/zh_CN?next=/device")
    assert lang_of(html_page(http.get("/device"), 200)) == "zh-CN"  # no Accept-Language


def test_the_cookie_is_secure_on_https(harness: Harness) -> None:
    response = harness.http.get("/lang/zh_CN?next=/device", base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "///evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/device\r\nSet-Cookie: x=y",
        "/\tevil",
    ],
)
def test_the_switch_goes_nowhere_but_this_site(harness: Harness, target: str) -> None:
    response = harness.http.get("/lang/zh_CN", query_string={"next": target})
    assert response.status_code == 303
    assert response.location == "/"  # the home page, not where `next` pointed


def test_the_switch_returns_to_a_path_with_its_query(harness: Harness) -> None:
    response = harness.http.get("/lang/zh_CN", query_string={"next": "/device?user_code=WDJB-MJHT"})
    assert response.location == "/device?user_code=WDJB-MJHT"


def test_an_unknown_language_sets_nothing(harness: Harness) -> None:
    response = harness.http.get("/lang/xx?next=/device")
    assert response.status_code == 303 and response.location == "/device"
    assert "Set-Cookie" not in response.headers
    # A cookie with an unknown language is ignored: Accept-Language decides.
    http = harness.http.application.test_client()
    http.set_cookie("lang", "klingon")
    assert lang_of(html_page(http.get("/device", headers=ZH), 200)) == "zh-CN"


# --- Every page in Chinese --------------------------------------------------------------------
def test_the_login_page_and_its_script_words_in_chinese(harness: Harness) -> None:
    html = html_page(harness.http.get(f"/login?client_id={harness.client_id}", headers=ZH), 200)
    found = PAGE_TEXT.search(html)
    assert found, "no words for the script"
    words = json.loads(found.group(1))
    assert words["expires_in"] == "二维码将在 %(time)s 后失效"
    assert words["confirm_phone"] == "请在手机上确认"
    assert words["scan"] == "请使用手机 App 扫码登录"
    assert words["new_code"] == "刷新二维码"
    # The wire's English descriptions, with their translations, for what the script shows.
    assert words["errors"]["The user declined the request."] == "用户已拒绝此请求。"
    # The JSON block cannot end the script element early, whatever a name holds.
    assert "</" not in found.group(1)


def test_the_verification_approval_and_done_pages_in_chinese(harness: Harness) -> None:
    started = harness.authorize()
    browser = chinese_browser(harness)
    form = html_page(browser.open(), 200)
    assert lang_of(form) == "zh-CN"
    assert "为其他设备登录" in form and "登录并继续" in form and "用户名" in form

    approval = html_page(browser.sign_in_and_enter(started["user_code"]), 200)
    assert lang_of(approval) == "zh-CN"
    assert "登录 Test PC app？" in approval
    assert "拒绝" in approval and "确认登录" in approval
    assert "（设备自述，未经核实）" in approval
    assert "未知设备" in approval  # what "TestPC/1.0" says it is: nothing the rules know
    assert "设备 IP 地址" in approval and "203.0.113.7" in approval
    assert "分钟内处理" in approval

    done = html_page(browser.decide(approval, "approve"), 200)
    assert lang_of(done) == "zh-CN"
    assert "<h1>已确认</h1>" in done and "你已确认登录" in done
    # After a POST the switch goes back to a page a GET can show: /device, else the home page.
    assert 'href="/lang/en?next=/device"' in approval
    assert 'href="/lang/en?next=/"' in done
    assert harness.poll(started["device_code"]).status_code == 200


def test_the_approval_pages_facts_in_chinese(harness: Harness) -> None:
    """The context facts: the place (CLDR's Chinese name) and the network warning."""
    started = harness.authorize()
    browser = chinese_browser(harness)
    browser.http.environ_base["REMOTE_ADDR"] = "8.8.8.8"  # another network than the PC's
    approval = html_page(browser.sign_in_and_enter(started["user_code"]), 200)
    assert "不在你当前的网络中。" in approval
    assert "大致位置" in approval
    assert "你的账号首次从" in approval


def test_messages_and_error_pages_in_chinese(harness: Harness) -> None:
    browser = chinese_browser(harness)
    wrong = html_page(browser.sign_in_and_enter("BCDF-GHJK", password="wrong password"), 401)
    assert "用户名不存在或密码错误。" in wrong

    http = harness.http
    unknown = html_page(http.get("/login?client_id=no-such-client", headers=ZH), 404)
    assert "<h1>未知应用</h1>" in unknown and "没有应用使用此 client_id。" in unknown
    # A domain error on a page: its description translated (the wire's stays English).
    scope = html_page(
        http.get(f"/login?client_id={harness.client_id}&scope=admin", headers=ZH), 400
    )
    assert "所请求的权限范围未知" in scope
    # Werkzeug's own errors too.
    missing = html_page(http.get("/assets/nothing.js", headers=ZH), 404)
    assert "页面不存在" in missing and lang_of(missing) == "zh-CN"


def test_an_authorization_error_page_in_chinese_names_the_client(harness: Harness) -> None:
    client_id, _ = harness.create_client(confidential=False)
    response = harness.http.get(
        "/authorize",
        query_string={
            "client_id": client_id,
            "redirect_uri": "https://unregistered.example/cb",
            "response_type": "code",
            "scope": "openid",
        },
        headers=ZH,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400, html
    assert "未登记的跳转地址" in html
    name = harness.services.clients.get(client_id).name  # type: ignore[union-attr]
    assert f"{name} 要求跳转到一个未登记的地址" in html


# --- The admin console ------------------------------------------------------------------------
@pytest.fixture
def console(harness: Harness) -> FlaskClient:
    harness.services.admin_auth.create(ADMIN, ADMIN_PASSWORD)
    http = harness.http.application.test_client()
    http.environ_base["HTTP_ACCEPT_LANGUAGE"] = ZH["Accept-Language"]
    return http


def test_the_admin_console_in_chinese(harness: Harness, console: FlaskClient) -> None:
    form = console.get("/admin/login")
    assert lang_of(form.text) == "zh-CN"
    assert "登录管理控制台" in form.text and "管理员用户名" in form.text

    wrong = console.post(
        "/admin/login",
        data={"username": ADMIN, "password": "wrong", "csrf_token": csrf_of(form.text)},
    )
    assert wrong.status_code == 401 and "管理员不存在或密码错误。" in wrong.text

    form = console.get("/admin/login")
    signed_in = console.post(
        "/admin/login",
        data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": csrf_of(form.text)},
    )
    assert signed_in.status_code == 303
    home = console.get("/admin/")
    assert lang_of(home.text) == "zh-CN"
    assert "查找用户" in home.text and "审计日志" in home.text and "退出登录" in home.text

    # A destructive action asks first, in Chinese; the notice afterwards is Chinese too.
    csrf = csrf_of(home.text)
    confirm = console.post(f"/admin/clients/{harness.client_id}/disable", data={"csrf_token": csrf})
    assert "停用此应用？" in confirm.text and "确定要这样做吗？" in confirm.text
    done = console.post(
        f"/admin/clients/{harness.client_id}/disable",
        data={"csrf_token": csrf, "confirmed": "yes"},
        follow_redirects=True,
    )
    assert "应用已停用，其全部会话已撤销。" in done.text
    assert "已于 <time" in done.text  # "Disabled <time>" as Chinese word order has it


# --- The wire stays English ---------------------------------------------------------------------
def test_json_errors_stay_english_whatever_the_reader_reads(harness: Harness) -> None:
    cookie_and_header: dict[str, Any] = {"headers": ZH}
    http = harness.http.application.test_client()
    http.set_cookie("lang", "zh_CN")

    token = http.post(
        "/oauth/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "x"},
        **cookie_and_header,
    )
    assert token.status_code in (400, 401)
    body = token.get_json()
    assert body["error"] and body["error_description"].isascii()

    started = harness.authorize()
    pending = harness.http.post(
        "/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": started["device_code"],
            "client_id": harness.client_id,
        },
        headers=ZH,
    ).get_json()
    assert pending == {
        "error": "authorization_pending",
        "error_description": "The user has not yet approved this request.",
    }

    mobile = http.post(
        "/mobile/v1/sessions",
        json={
            "username": "nobody",
            "password": "x",
            "device": {"id": "d-1", "name": "A phone", "platform": "ios"},
        },
        **cookie_and_header,
    )
    assert mobile.get_json()["error_description"] == "Unknown username or wrong password."

    admin = http.get("/admin/v1/sessions", **cookie_and_header)
    assert admin.status_code == 401
    assert admin.get_json()["error_description"].isascii()

    unknown = http.get("/oauth/nothing-here", **cookie_and_header)
    assert unknown.mimetype == "application/json" and unknown.get_json()["error"] == "not_found"
