"""Messages of the programs pages: key -> (English, Korean)."""

MESSAGES: dict[str, tuple[str, str]] = {
    "programs.title": ("Programs", "프로그램"),
    "programs.intro": (
        "Each program's budget and credits in {period}.",
        "{period} 기간 각 프로그램의 예산과 크레딧입니다.",
    ),
    "programs.no_period": (
        "No allocation period is running: there are no budgets or balances to show.",
        "진행 중인 할당 기간이 없어 표시할 예산이나 잔액이 없습니다.",
    ),
    "programs.none": (
        "You manage no program. Admins make people program managers.",
        "관리하는 프로그램이 없습니다. 프로그램 관리자는 관리자가 지정합니다.",
    ),
    "programs.open": ("Open {program}", "{program} 열기"),
    "programs.period": ("Period {period}", "{period} 기간"),
    "programs.managers": ("Program managers: {names}", "프로그램 관리자: {names}"),
    "programs.no_managers": ("This program has no manager.", "이 프로그램에는 관리자가 없습니다."),
    "programs.credits_heading": ("Credits in {period}", "{period} 크레딧"),
    # the tree and its editor
    "programs.tree_heading": ("Account tree", "계정 트리"),
    "programs.tree_caption": (
        "Shares, entitled shares, budgets, guarantees, borrowing limits and credits of every "
        "account in {program}",
        "{program}에 속한 모든 계정의 지분, 보장 지분, 예산, 보장 GPU, 차용 한도와 크레딧",
    ),
    "programs.tree_hint": (
        "The entitled share is what fair share gives an account when every account wants GPUs: "
        "its share over its siblings' shares, and (overall) its part of the whole pool.",
        "보장 지분은 모든 계정이 GPU를 원할 때 공정 배분이 그 계정에 주는 몫입니다. 형제 계정 "
        "지분 합계 대비 비율과, 전체 풀에서 차지하는 비율(전체)을 보여 줍니다.",
    ),
    "programs.col_account": ("Account", "계정"),
    "programs.col_share": ("Share", "지분"),
    "programs.col_entitled_siblings": ("Entitled (among siblings)", "보장 지분 (형제 계정 중)"),
    "programs.col_entitled_overall": ("Entitled (overall)", "보장 지분 (전체)"),
    "programs.col_budget": ("Budget (credits)", "예산 (크레딧)"),
    "programs.col_guaranteed": ("Guaranteed GPUs", "보장 GPU"),
    "programs.col_borrowing": ("Borrowing limit GPUs", "차용 한도 GPU"),
    "programs.no_limit": ("No limit", "제한 없음"),
    "programs.no_cap": ("No cap", "상한 없음"),
    "programs.kind.program": ("program", "프로그램"),
    "programs.kind.organization": ("organization", "기관"),
    "programs.kind.project": ("project", "프로젝트"),
    "programs.share_of": ("Share of {account}", "{account} 지분"),
    "programs.budget_of": ("Budget of {account} in credits", "{account} 예산 (크레딧)"),
    "programs.guaranteed_of": ("Guaranteed GPUs of {account}", "{account} 보장 GPU"),
    "programs.borrowing_of": ("Borrowing limit GPUs of {account}", "{account} 차용 한도 GPU"),
    "programs.edit_hint": (
        "Change any value, then Preview to see the entitled shares that would result. Nothing "
        "is saved until you press Save. Leave a budget empty for no cap and a borrowing limit "
        "empty for no limit.",
        "값을 바꾼 뒤 [미리 보기]를 누르면 바뀔 보장 지분을 볼 수 있습니다. [저장]을 누르기 "
        "전에는 아무것도 저장되지 않습니다. 예산을 비우면 상한이 없고, 차용 한도를 비우면 "
        "제한이 없습니다.",
    ),
    "programs.program_row_by_admins": (
        "The program's own share and budget are set by admins.",
        "프로그램 자체의 지분과 예산은 관리자가 정합니다.",
    ),
    "programs.read_only": (
        "Shares, budgets, guarantees and borrowing limits here are changed by the program's "
        "managers ({names}) or an admin.",
        "이 프로그램의 지분, 예산, 보장 GPU, 차용 한도는 프로그램 관리자({names})나 관리자가 "
        "변경합니다.",
    ),
    "programs.preview": ("Preview", "미리 보기"),
    "programs.save": ("Save", "저장"),
    "programs.download_csv": ("Download the tree as CSV", "트리를 CSV로 내려받기"),
    "programs.preview_notice": (
        "Preview: nothing is saved yet. Entitled shares are shown as now → after the change; "
        "changed rows are marked. Press Save to apply every change at once.",
        "미리 보기: 아직 아무것도 저장되지 않았습니다. 보장 지분은 '현재 → 변경 후'로 "
        "표시되며, 바뀐 행은 표시됩니다. [저장]을 누르면 모든 변경이 한 번에 적용됩니다.",
    ),
    "programs.preview_nothing": (
        "Preview: these values change nothing.",
        "미리 보기: 이 값으로는 바뀌는 것이 없습니다.",
    ),
    "programs.changed": ("changed", "변경됨"),
    "programs.refused": ("Nothing was changed", "아무것도 변경되지 않았습니다"),
    "programs.saved": (
        "Saved: {count} accounts changed.",
        "저장했습니다: 계정 {count}개가 변경되었습니다.",
    ),
    "programs.saved_nothing": (
        "Nothing to save: the values were already so.",
        "저장할 내용이 없습니다: 이미 같은 값입니다.",
    ),
    # adding an account
    "programs.add_heading": ("Add an organization or a project", "기관 또는 프로젝트 추가"),
    "programs.add_hint": (
        "Under the program you add an organization; under an organization, a project.",
        "프로그램 아래에는 기관을, 기관 아래에는 프로젝트를 추가합니다.",
    ),
    "programs.add_parent": ("Under", "상위 계정"),
    "programs.add_parent_option": ("{name} (adds {kind})", "{name} ({kind} 추가)"),
    "programs.add_name": ("Name", "이름"),
    "programs.add_name_hint": (
        "Lower-case letters, digits and inner dashes, e.g. kaist-vision.",
        "영문 소문자, 숫자와 중간의 대시(-)만 씁니다. 예: kaist-vision",
    ),
    "programs.add_display_name": ("Display name", "표시 이름"),
    "programs.add_share": ("Share", "지분"),
    "programs.add_send": ("Add", "추가"),
    "programs.added": ("Added {name}.", "{name}을(를) 추가했습니다."),
    "programs.add_refused": ("The account was not added", "계정을 추가하지 못했습니다"),
    # the burn-down
    "programs.burn_heading": ("Credit burn-down", "크레딧 소진 추이"),
    "programs.burn_title": ("Remaining credits of {program}", "{program} 남은 크레딧"),
    "programs.burn_remaining": ("Remaining (held + available)", "남은 크레딧 (예약 + 사용 가능)"),
    "programs.burn_projection": ("Projection at the recent burn", "최근 소진 속도로 본 예측"),
    "programs.burn_axis": ("credits", "크레딧"),
    "programs.burn_empty": (
        "No credits moved in this period yet.",
        "이 기간에 움직인 크레딧이 아직 없습니다.",
    ),
    "programs.burn_description": (
        "Credits of the program not yet charged, at the end of each day of the period.",
        "기간 중 매일 마감 시점의, 아직 과금되지 않은 프로그램 크레딧입니다.",
    ),
    "programs.burn_left": ("Remaining now", "현재 남은 크레딧"),
    "programs.burn_rate": ("Burn over the last 7 days", "최근 7일 소진 속도"),
    "programs.burn_per_day": ("{amount} per day", "하루 {amount}"),
    "programs.burn_exhausted": ("Projected exhaustion", "예상 소진일"),
    "programs.burn_not_within": ("not within the period", "기간 내 소진되지 않음"),
    "programs.burn_no_burn": (
        "no credits charged in the last 7 days",
        "최근 7일간 과금된 크레딧 없음",
    ),
    "programs.burn_period_ends": ("Period ends", "기간 종료"),
    "programs.burn_no_period": (
        "No allocation period is running: there is nothing to burn down.",
        "진행 중인 할당 기간이 없어 소진 추이가 없습니다.",
    ),
}
