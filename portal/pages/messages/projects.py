"""Messages of the projects pages: key -> (English, Korean)."""

MESSAGES: dict[str, tuple[str, str]] = {
    "projects.title": ("Projects", "프로젝트"),
    "projects.in_period": ("Credits in {period}", "{period} 기간의 크레딧"),
    "projects.caption": (
        "Projects with their budgets and credits in {period}",
        "{period} 기간 프로젝트별 예산과 크레딧",
    ),
    "projects.parent": ("Organization", "기관"),
    "projects.none": (
        "You see no project yet. A project's PI or a program manager adds you to one.",
        "아직 볼 수 있는 프로젝트가 없습니다. 프로젝트 책임자(PI)나 프로그램 관리자가 "
        "추가할 수 있습니다.",
    ),
    "project.its_jobs": ("Its jobs", "이 프로젝트의 작업"),
    "project.balances": ("Credits in {period}", "{period} 기간 크레딧"),
    "project.usage": ("Usage over time", "기간별 사용량"),
    "project.usage_chart": ("Credits spent in {period}", "{period} 기간 사용한 크레딧"),
    "project.usage_description": (
        "Credits spent since the period began, counted at the end of each day.",
        "기간 시작부터 누적된 사용 크레딧이며, 하루가 끝날 때마다 집계합니다.",
    ),
    "project.spent_so_far": ("Spent so far", "누적 사용량"),
    "project.credits_axis": ("Credits", "크레딧"),
    "project.no_usage": (
        "The period has not begun: nothing to chart yet.",
        "기간이 아직 시작되지 않아 표시할 사용량이 없습니다.",
    ),
    "project.requests": ("Allocation requests", "할당 요청"),
    "project.all_requests": ("All {total} requests", "요청 {total}건 모두 보기"),
    "project.members": ("Members", "구성원"),
    "project.member": ("Member", "구성원"),
    "project.role": ("Role", "역할"),
    "project.role_of": ("Role of {user}", "{user}의 역할"),
    "project.role_pi": ("PI", "책임자(PI)"),
    "project.role_researcher": ("Researcher", "연구원"),
    "project.no_members": ("This project has no members.", "이 프로젝트에는 구성원이 없습니다."),
    "project.change_role": ("Change role", "역할 변경"),
    "project.remove": ("Remove", "제외"),
    "project.new_member": ("Add a member (user name)", "구성원 추가 (사용자 이름)"),
    "project.add": ("Add", "추가"),
    "project.refused": ("Nothing was changed.", "변경되지 않았습니다."),
    "project.who_manages_members": (
        "You cannot change the members here.",
        "이 프로젝트의 구성원을 변경할 권한이 없습니다.",
    ),
}
