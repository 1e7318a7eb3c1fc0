"""Messages of the reports pages, the ledger and the audit log: key -> (English, Korean)."""

MESSAGES: dict[str, tuple[str, str]] = {
    # the index
    "reports.title": ("Reports", "보고서"),
    "reports.scope_all": (
        "You see the whole pool (admin or auditor).",
        "풀 전체를 볼 수 있습니다(관리자 또는 감사자).",
    ),
    "reports.scope_programs": (
        "You see the programs you manage: {programs}.",
        "관리하는 프로그램만 보입니다: {programs}.",
    ),
    "reports.fairshare": ("Fair share", "공정 배분"),
    "reports.fairshare_about": (
        "Shares, usage and fair-share factor per account, like Slurm's sshare, with usage "
        "against entitlement over time.",
        "계정별 지분, 사용량, 공정 배분 계수(Slurm sshare와 같은 방식)와 시간에 따른 사용량 대비 "
        "배정 지분.",
    ),
    "reports.utilisation": ("Utilisation", "가동률"),
    "reports.utilisation_about": (
        "Allocated, idle and down GPU-hours per cluster and flavor, per day.",
        "클러스터·가속기 종류별로 할당, 유휴, 중단된 GPU시간을 일별로 보여 줍니다.",
    ),
    "reports.spend": ("Spend", "지출"),
    "reports.spend_about": (
        "Credits charged, from funder to program, organization and project.",
        "재원 기관에서 프로그램, 기관, 프로젝트까지 청구된 크레딧.",
    ),
    "reports.wait_times": ("Wait times", "대기 시간"),
    "reports.wait_times_about": (
        "How long jobs waited from submission to admission, per program (p50, p90, p99).",
        "프로그램별로 작업이 제출부터 승인까지 기다린 시간(p50, p90, p99).",
    ),
    "reports.ledger_about": (
        "Every movement of credits, with filters.",
        "모든 크레딧 이동 내역을 조건별로 볼 수 있습니다.",
    ),
    "reports.audit_about": ("Who changed what, and when.", "누가 언제 무엇을 바꾸었는지."),
    # shared
    "reports.period_label": ("Period", "기간"),
    "reports.period_hint": ("Empty: the current period", "비우면 현재 기간"),
    "reports.period_is": ("Period {period}, as of {when}", "{period} 기간, {when} 기준"),
    "reports.since": ("From", "시작"),
    "reports.until": ("Until", "끝"),
    "reports.when_hint": (
        "e.g. 7d, 24h, 2025-03-01 or 2025-03-01T09:00",
        "예: 7d, 24h, 2025-03-01, 2025-03-01T09:00",
    ),
    "reports.window_is": ("From {since} until {until}", "{since}부터 {until}까지"),
    "reports.show": ("Show", "보기"),
    "reports.no_data": ("No data in this window.", "이 기간에는 데이터가 없습니다."),
    "reports.csv_api": (
        "Download CSV (the same rows, from the API)",
        "CSV 내려받기 (API의 같은 행)",
    ),
    "reports.table_of": ("{what}: table", "{what}: 표"),
    "reports.charts": ("Charts", "차트"),
    "reports.credits": ("Credits", "크레딧"),
    "reports.krw": ("Won", "원화"),
    "reports.jobs": ("Jobs", "작업 수"),
    "reports.gpu_hours": ("GPU-hours", "GPU시간"),
    "reports.infinite": ("∞ (no usage yet)", "∞ (아직 사용 없음)"),
    "reports.none_on": ("not within the period", "기간 내 소진 안 됨"),
    # fair share
    "reports.fs_help": (
        "Read it like Slurm's sshare. Raw shares are the account's weight; normalized shares "
        "are its shares over its siblings'. Raw usage is its subtree's decayed usage in credits "
        "(charges halve in weight every {half_life} hours); effective usage is that over its "
        "siblings'. The level fair share is normalized shares / effective usage: above 1, the "
        "account has used less than its share and its jobs go first.",
        "Slurm의 sshare처럼 읽으면 됩니다. 원 지분은 계정의 가중치이고, 정규화 지분은 형제 계정 "
        "지분 합에 대한 비율입니다. 원 사용량은 하위 트리의 감쇠 사용량(크레딧; 청구의 가중치가 "
        "{half_life}시간마다 절반으로 줄어듦)이고, 유효 사용량은 형제 계정 사용량 합에 대한 "
        "비율입니다. 수준 공정 배분 값은 정규화 지분 ÷ 유효 사용량이며, 1보다 크면 지분보다 덜 "
        "썼으므로 작업이 먼저 실행됩니다.",
    ),
    "reports.fs_chart_help": (
        "Each chart compares an account's entitled share (its normalized shares among its "
        "siblings, from the tree as it is now) with its usage share: its decayed usage over its "
        "siblings', exactly as the scheduler's fair share counts it, at the start of each day "
        "of the period and now. Usage above entitlement means the account has lately used more "
        "than its share.",
        "각 차트는 계정의 배정 지분(현재 트리 기준, 형제 계정 사이의 정규화 지분)과 사용 지분을 "
        "비교합니다. 사용 지분은 스케줄러의 공정 배분과 똑같이 계산한 감쇠 사용량을 형제 계정 "
        "사용량 합으로 나눈 값이며, 기간의 매일 0시와 현재 시점에 계산합니다. 사용 지분이 배정 "
        "지분보다 높으면 최근에 지분보다 많이 썼다는 뜻입니다.",
    ),
    "reports.fs_account": ("Account", "계정"),
    "reports.fs_kind": ("Kind", "종류"),
    "reports.fs_share": ("Raw shares", "원 지분"),
    "reports.fs_norm_share": ("Normalized shares", "정규화 지분"),
    "reports.fs_usage": ("Raw usage", "원 사용량"),
    "reports.fs_norm_usage": ("Effective usage", "유효 사용량"),
    "reports.fs_level_fs": ("Level fair share", "수준 공정 배분"),
    "reports.fs_running": ("GPUs running", "실행 중 GPU"),
    "reports.fs_pending": ("GPUs waiting", "대기 중 GPU"),
    "reports.fs_credits": ("Credits of the period", "기간 크레딧"),
    "reports.fs_awarded": ("Awarded", "배정"),
    "reports.fs_spent": ("Spent", "사용"),
    "reports.fs_held": ("Held", "예약"),
    "reports.fs_available": ("Available", "사용 가능"),
    "reports.fs_burn": ("Burn per day", "일일 소진"),
    "reports.fs_exhausted": ("Runs out on", "소진 예상일"),
    "reports.fs_urgent_jobs": ("Urgent jobs", "긴급 작업"),
    "reports.fs_urgent_hours": ("Urgent GPU-h", "긴급 GPU시간"),
    "reports.fs_urgent_used": ("Urgent credits", "긴급 크레딧"),
    "reports.fs_nodes": ("Accounts to chart", "차트로 볼 계정"),
    "reports.fs_nodes_hint": (
        "Up to 8; none chosen: the programs.",
        "최대 8개. 선택하지 않으면 프로그램들.",
    ),
    "reports.fs_over_time": ("Usage against entitlement", "배정 대비 사용"),
    "reports.fs_chart_title": ("{account}: usage against entitlement", "{account}: 배정 대비 사용"),
    "reports.fs_entitled": ("Entitled share", "배정 지분"),
    "reports.fs_used": ("Usage share", "사용 지분"),
    "reports.fs_axis": ("Share among siblings", "형제 계정 중 비율"),
    "reports.fs_chart_empty": (
        "The period has not started.",
        "기간이 아직 시작되지 않았습니다.",
    ),
    "reports.kind_pool": ("pool", "풀"),
    "reports.kind_program": ("program", "프로그램"),
    "reports.kind_organization": ("organization", "기관"),
    "reports.kind_project": ("project", "프로젝트"),
    "reports.kind_funder": ("funder", "재원 기관"),
    # utilisation
    "reports.util_help": (
        "Total is each cluster's declared GPUs over the window; allocated is the GPUs jobs held "
        "while they ran; down is GPUs of nodes out of service; idle is the rest (below zero "
        "only if jobs ran on a node while it was down). Days are days in {zone}.",
        "전체는 클러스터에 등록된 GPU 수 × 기간이고, 할당은 작업이 실행되는 동안 점유한 GPU, "
        "중단은 서비스에서 빠진 노드의 GPU, 유휴는 나머지입니다(중단된 노드에서 작업이 계속 "
        "실행된 경우에만 0보다 작음). 날짜는 {zone} 기준입니다.",
    ),
    "reports.cluster": ("Cluster", "클러스터"),
    "reports.flavor": ("Flavor", "가속기 종류"),
    "reports.site": ("Site", "위치"),
    "reports.total": ("Total", "전체"),
    "reports.allocated": ("Allocated", "할당"),
    "reports.idle": ("Idle", "유휴"),
    "reports.down": ("Down", "중단"),
    "reports.busy": ("Utilisation", "가동률"),
    "reports.util_chart_title": (
        "{cluster} · {flavor}: GPU-hours per day",
        "{cluster} · {flavor}: 일별 GPU시간",
    ),
    "reports.util_no_daily": (
        "The window is longer than 92 days: no chart per day.",
        "기간이 92일보다 길어 일별 차트를 그리지 않습니다.",
    ),
    # spend
    "reports.spend_help": (
        "Credits charged to jobs in the period, net of refunds; won at each funder's price per "
        "credit. Each line counts everything below it.",
        "기간 동안 작업에 청구된 크레딧(환불 제외)이며, 원화는 재원 기관별 크레딧 단가로 "
        "계산합니다. 각 행은 그 아래 모든 항목의 합계입니다.",
    ),
    "reports.spend_tree": ("From funder to project", "재원 기관에서 프로젝트까지"),
    "reports.spend_tree_programs": ("From program to project", "프로그램에서 프로젝트까지"),
    "reports.spend_tree_csv": ("Download this table as CSV", "이 표를 CSV로 내려받기"),
    "reports.spend_by": ("Group by", "묶는 기준"),
    "reports.spend_grouped": ("Spend by {by}", "{by}별 지출"),
    "reports.spend_chart_title": ("Credits by {by}, {period}", "{period} {by}별 크레딧"),
    "reports.by_funder": ("funder", "재원 기관"),
    "reports.by_program": ("program", "프로그램"),
    "reports.by_organization": ("organization", "기관"),
    "reports.by_project": ("project", "프로젝트"),
    "reports.by_flavor": ("flavor", "가속기 종류"),
    "reports.by_site": ("site", "위치"),
    "reports.name": ("Name", "이름"),
    "reports.unplaced": ("(no placement recorded)", "(배치 기록 없음)"),
    "reports.no_spend": (
        "Nothing was charged in this period.",
        "이 기간에는 청구된 크레딧이 없습니다.",
    ),
    # wait times
    "reports.wait_help": (
        "Jobs first admitted in the window, per program; the wait runs from submission to "
        "first admission. Percentiles are nearest-rank: each is a wait a job really had.",
        "기간 안에 처음 승인된 작업을 프로그램별로 셉니다. 대기 시간은 제출부터 첫 승인까지이며, "
        "백분위수는 최근접 순위 방식이라 실제 어떤 작업이 기다린 시간입니다.",
    ),
    "reports.program": ("Program", "프로그램"),
    "reports.wait_chart_title": ("Waits per program", "프로그램별 대기 시간"),
    "reports.wait_axis": ("Wait from submission to admission", "제출부터 승인까지 대기"),
    "reports.no_waits": (
        "No job was admitted in this window.",
        "이 기간에 승인된 작업이 없습니다.",
    ),
    # ledger
    "ledger.title": ("Ledger", "원장"),
    "ledger.help": (
        "Every movement of credits you may see, newest first. Nobody writes here: entries "
        "come from contributions, awards, and the scheduler's holds and charges.",
        "볼 수 있는 모든 크레딧 이동을 최신순으로 보여 줍니다. 여기서는 아무도 기록하지 않으며, "
        "항목은 출연, 배정, 스케줄러의 예약과 청구에서 생깁니다.",
    ),
    "ledger.account": ("Account", "계정"),
    "ledger.kind": ("Kind", "종류"),
    "ledger.id": ("#", "번호"),
    "ledger.at": ("When", "시각"),
    "ledger.funder": ("Funder", "재원 기관"),
    "ledger.from": ("From", "출처"),
    "ledger.to": ("To", "대상"),
    "ledger.amount": ("Amount", "금액"),
    "ledger.actor": ("By", "처리자"),
    "ledger.reason": ("Reason", "사유"),
    "ledger.none": ("No entry matches.", "조건에 맞는 항목이 없습니다."),
    "ledger.entry_contribution": ("Contribution", "출연"),
    "ledger.entry_appropriation": ("Appropriation", "배분"),
    "ledger.entry_award": ("Award", "배정"),
    "ledger.entry_hold": ("Hold", "예약"),
    "ledger.entry_charge": ("Charge", "청구"),
    "ledger.entry_release": ("Release", "예약 해제"),
    "ledger.entry_refund": ("Refund", "환불"),
    "ledger.entry_adjustment": ("Adjustment", "조정"),
    "ledger.entry_reversal": ("Reversal", "취소"),
    "ledger.entry_expiry": ("Expiry", "만료"),
    "ledger.bucket_funder": ("funder", "재원"),
    "ledger.bucket_available": ("available", "사용 가능"),
    "ledger.bucket_held": ("held", "예약"),
    "ledger.bucket_spent": ("spent", "사용"),
    "ledger.bucket_expired": ("expired", "만료"),
    # audit
    "audit.title": ("Audit log", "감사 기록"),
    "audit.help": (
        "Who changed what in the books, newest first; for admins and auditors.",
        "장부에서 누가 무엇을 바꾸었는지 최신순으로 보여 줍니다. 관리자와 감사자만 볼 수 있습니다.",
    ),
    "audit.actor": ("Actor", "처리자"),
    "audit.action": ("Action", "작업"),
    "audit.action_hint": ("e.g. budget.set", "예: budget.set"),
    "audit.target": ("Target", "대상"),
    "audit.change": ("Before → after", "변경 전 → 후"),
    "audit.none": ("No entry matches.", "조건에 맞는 항목이 없습니다."),
}
