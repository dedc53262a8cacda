"""The status page's stylesheet and chart legend, inline in every page (no external asset)."""

from __future__ import annotations

CSS = """
:root{--ok:#1a7f37;--bad:#c62828;--dim:#57606a;--line:#d0d7de;--bg:#f6f8fa;--gap:#fff1b8}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#1f2328;background:var(--bg)}
main{max-width:1100px;margin:0 auto;padding:12px}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:0;overflow-wrap:anywhere}
h3{font-size:1em;margin:1em 0 .4em}
.summary{padding:10px 12px;border-radius:8px;color:#fff}
.summary.ok{background:var(--ok)}.summary.bad{background:var(--bad)}
.summary .title{margin:0;font-size:1.15em;font-weight:700}
.summary a{color:#fff;font-weight:700}
.culprits{margin:.4em 0 0;padding-left:1.6em;overflow-wrap:anywhere}
.culprits li{margin:.15em 0}.rest{margin:.4em 0 0;opacity:.9;font-size:.9em}
.updated{color:var(--dim);font-size:.85em}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px;margin:12px 0}
.card.bad{border-left:6px solid var(--bad)}.card.ok{border-left:6px solid var(--ok)}
.head{display:flex;flex-wrap:wrap;gap:8px;align-items:center;justify-content:space-between}
details>summary{cursor:pointer}.brief{color:var(--dim);font-size:.9em}
.badge{padding:2px 10px;border-radius:999px;font-weight:700;color:#fff;white-space:nowrap}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}
.reasons{margin:8px 0;padding:8px 8px 8px 28px;background:#ffebe9;border-radius:6px;
 overflow-wrap:anywhere}
.stats{display:flex;flex-wrap:wrap;gap:8px}
.stats div{flex:1 1 150px;background:var(--bg);border-radius:6px;padding:6px 10px}
.stats dt{font-size:.8em}.stats dd{font-size:1.15em;font-weight:700}
.cap{font-size:.75em;font-weight:400;color:var(--dim)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,380px),1fr));
 gap:0 24px}
.grid.now{grid-template-columns:1fr;background:#f3f6ff;border-radius:6px;padding:2px 10px}
dl{margin:8px 0}.grid div{display:flex;flex-wrap:wrap;justify-content:space-between;gap:0 12px;
 border-bottom:1px solid var(--bg);padding:3px 0}
dt{color:var(--dim)}dd{margin:0;overflow-wrap:anywhere}.grid dd{margin-left:auto;text-align:right}
.plain{list-style:none;margin:0;padding:0}
code{font:.85em ui-monospace,Menlo,Consolas,monospace}
.charts{display:grid;gap:6px}
figure{margin:0}figcaption{font-size:.85em;color:var(--dim)}
.unit{font-weight:600}
.plot{position:relative;height:86px;margin-left:3.4em;background:var(--bg);
 border-left:1px solid var(--line);border-bottom:1px solid var(--line)}
.plot svg{display:block;width:100%;height:100%}
.plot span{position:absolute;font-size:.72em;white-space:nowrap;pointer-events:none}
.y{right:100%;margin-right:4px;color:var(--dim);transform:translateY(-50%)}
.y.top{top:0;transform:none}.y.zero{bottom:0;transform:none}
.mark{right:4px;transform:translateY(-100%);font-weight:600;padding:0 3px;border-radius:3px;
 background:rgba(255,255,255,.85)}
.mark.level{color:var(--ok);left:4px;right:auto}.mark.limit{color:var(--bad)}
.key{margin-left:10px;font-weight:600;white-space:nowrap}
.key::before{content:"";display:inline-block;width:1.4em;margin-right:4px;vertical-align:middle;
 border-top:2px dashed}
.key.level{color:var(--ok)}.key.limit{color:var(--bad)}
.gaplabel{top:30%;transform:translateX(-50%);font-weight:700;color:#6f4a00}
line{stroke-width:1.5;stroke-dasharray:6 4;vector-effect:non-scaling-stroke}
line.level{stroke:var(--ok)}line.limit{stroke:var(--bad)}
rect.gap{fill:var(--gap)}rect.reorg{fill:#bf5b00}
.xaxis{position:relative;height:1.4em;margin-left:3.4em;font-size:.72em;color:var(--dim)}
.xaxis span{position:absolute;top:0;transform:translateX(-50%);white-space:nowrap}
.xaxis .start{left:0;transform:none}.xaxis .end{right:0;transform:none}
.bar{fill:#0969da}.bar.failed{fill:var(--bad)}.bar.skipped,.bar.idle{fill:#8c959f}
.bar.none{fill:#ffd3cf}.legend{font-size:.8em;color:var(--dim);margin:4px 0}
.sw{display:inline-block;width:.8em;height:.8em;margin:0 3px 0 8px;background:#0969da}
.sw.idle{background:#8c959f}.sw.failed{background:var(--bad)}.sw.none{background:#ffd3cf}
.sw.gap{background:var(--gap);outline:1px solid #e5c75c}.sw.reorg{background:#bf5b00}
.sw.level{height:0;width:1.4em;border-top:2px dashed var(--ok);vertical-align:middle}
.gaps{margin:4px 0;padding:6px 8px 6px 26px;background:var(--gap);border-radius:6px;
 font-weight:600}
caption{text-align:left;font-weight:600;padding:8px 0 4px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);vertical-align:top}
td.n,th.n{text-align:right}.failed{color:var(--bad);font-weight:600}
td.err{color:var(--bad);font-size:.85em;overflow-wrap:anywhere;padding-top:0}
@media (max-width:600px){.hide-narrow{display:none}main{padding:8px}
 .stats div:first-child{flex-basis:100%}.grid dd{text-align:left;margin-left:0}}
"""

LEGEND = (
    '<p class="legend">Bars placed at each run\'s start, as wide as it ran: <i class="sw"></i>ok '
    '<i class="sw idle"></i>idle <i class="sw failed"></i>failed <i class="sw none"></i>value '
    'unknown <i class="sw gap"></i>no run <i class="sw reorg"></i>reorganisation (top) '
    '<i class="sw level"></i>the confirmations: a lag at this line is normal</p>'
)
