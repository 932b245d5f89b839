//! The report's one style sheet, inlined in every page it writes (the day's national page,
//! each LA's page, the history page): pages stay self-contained and print cleanly.

pub const CSS: &str = "
body { font-family: system-ui, sans-serif; margin: 1.2rem 2rem; color: #1b1b1b; max-width: 1400px; }
h1 { font-size: 1.45rem; margin: 0.4rem 0; } h2 { font-size: 1.15rem; margin: 1.4rem 0 0.5rem; border-bottom: 2px solid #005eb8; }
nav { font-size: 0.9rem; } .meta { color: #425563; font-size: 0.85rem; margin: 0.2rem 0; }
table { border-collapse: collapse; font-size: 0.75rem; }
th, td { border: 1px solid #c8c8c8; padding: 0.05rem 0.25rem; text-align: right; white-space: nowrap; }
th { background: #e8edf3; } td.name, th.name { text-align: left; }
ol.actions { margin: 0; padding-left: 1.6rem; } ol.actions li { margin: 0.2rem 0; }
ol.actions .todo { color: #425563; }
li.audit-failed, li.quarantined, li.rejected { border-left: 4px solid #da291c; padding-left: 0.4rem; }
li.never-sent, li.late, li.notifications-pending, li.undelivered { border-left: 4px solid #ed8b00; padding-left: 0.4rem; }
li.ucpp-past-edd, li.conflict { border-left: 4px solid #005eb8; padding-left: 0.4rem; }
.ok { color: #00703c; } .bad { color: #da291c; font-weight: bold; }
.cols { display: flex; gap: 0.8rem; align-items: flex-start; flex-wrap: wrap; }
tr.needs td { background: #fdf0e3; } tr.needs-red td { background: #fde8e8; }
.empty { font-size: 1.05rem; padding: 0.8rem; background: #fff6d5; border-left: 4px solid #d5a500; }
figure { margin: 0.8rem 0; } figcaption { font-style: italic; font-size: 0.85rem; }
details.figures summary { cursor: pointer; font-size: 0.85rem; }
svg.spark { vertical-align: middle; }
@media print { body { margin: 0.5cm; } figure, table, li { page-break-inside: avoid; } details.figures > *:not(summary) { display: block; } nav { display: none; } }
";
