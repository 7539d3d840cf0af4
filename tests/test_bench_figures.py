"""Every benchmark figure in README.md comes from a JSON file in bench/results/ (no hand-copied numbers)."""

from bench import report


def test_readme_benchmark_block_is_the_one_generated_from_the_json_results():
    text = report.README.read_text()
    block = text[text.index(report.BEGIN):text.index(report.END) + len(report.END)]
    assert block == report.readme_block(), "README's benchmark block is stale: run `python -m bench.report`"


def test_the_block_shows_what_the_json_says():
    results = report._load()
    wave = next(d for d in results if d["_file"] == "wave-1000.json")
    block = report.readme_block(results)
    assert f"**{wave['wave']['stages_wall_s']:,.1f}**" in block
    assert f"**{wave['wave']['ratio_to_bound']:,.2f}**" in block
