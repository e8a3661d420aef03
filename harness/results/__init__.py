"""Records and every view of them: CaseRecord and the run layout, leaderboard, HTML, gates, statistics,
run comparison. Views read records only.
"""
