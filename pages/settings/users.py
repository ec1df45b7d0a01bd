"""ユーザーと権限: who may use this shop and in which role (承認・管理 only), and the audit log."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from crm_core import access
from pages import ui

store = ui.real_store()  # users and the audit log belong to the shop, never to the sample file
me = ui.current_user()
ui.run(access.require, me, "users.manage")

st.title("👥 ユーザーと権限")
st.write("このショップを使える人と役割を管理します。役割はショップごとに分かれています。")
st.table(pd.DataFrame(
    [{"役割": r.label, "できること": access.ROLE_HELP[r]} for r in access.Role]
).set_index("役割"))

if flash := st.session_state.pop("usr_flash", None):
    st.success(flash, icon="✅")

users = ui.run(access.list_users, store)
if users:
    ui.dataframe(
        pd.DataFrame(users).rename(columns={"email": "メールアドレス", "name": "名前", "role": "役割",
                                            "added_at": "登録日時", "added_by": "登録した人"}),
        hide_index=True, width="stretch",
    )
else:
    ui.empty_state("まだユーザーが登録されていません。ログインで使う場合、最初にログインした人が「承認・管理」になります。")

ROLES = [r.value for r in access.Role]
with st.form("usr_add", clear_on_submit=True):
    st.subheader("ユーザーを追加")
    c1, c2, c3 = st.columns([3, 2, 2])
    email = c1.text_input("メールアドレス（ログインに使うアカウント）", key="usr_email")
    name = c2.text_input("名前", key="usr_name")
    role = c3.selectbox("役割", ROLES, key="usr_role")
    if st.form_submit_button("追加", type="primary"):
        ui.run(access.add_user, store, me, email, role, name=name)
        st.session_state["usr_flash"] = f"{email.strip()} を「{role}」として追加しました。"
        st.rerun()

if users:
    st.subheader("役割の変更・削除")
    c1, c2, c3, c4 = st.columns([3, 2, 1, 1], vertical_alignment="bottom")
    who = c1.selectbox("ユーザー", [u["email"] for u in users], key="usr_who")
    new_role = c2.selectbox("新しい役割", ROLES, key="usr_new_role")
    if c3.button("役割を変更", key="usr_set"):
        ui.run(access.set_role, store, me, who, new_role)
        st.session_state["usr_flash"] = f"{who} の役割を「{new_role}」にしました。"
        st.rerun()
    if c4.button("削除", key="usr_remove"):
        ui.run(access.remove_user, store, me, who)
        st.session_state["usr_flash"] = f"{who} をこのショップから削除しました。"
        st.rerun()

st.subheader("操作の記録")
st.caption("だれが・いつ・何をしたかの記録です（新しい順に200件）。")
log = ui.run(access.audit_log, store)
if log:
    ui.dataframe(
        pd.DataFrame(log).rename(columns={"logged_at": "日時", "user_email": "ユーザー", "role": "役割",
                                          "action": "操作", "detail": "詳細"}),
        hide_index=True, width="stretch",
    )
else:
    ui.empty_state("まだ記録はありません。")
