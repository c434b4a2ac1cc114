"""The report page's inline style and script (``report.render_report`` writes them into each
page): kept apart so that the module that gathers the page's facts stays short.

The script filters the failures table as one types, and adds the element ``MARKER`` names
last, so a headless browser that finds it knows the script ran to its end without an exception.
"""

MARKER = "report-ready"

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
.muted{color:#6b7280}.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px}
.kv dt{color:#6b7280}.kv dd{margin:0;overflow-wrap:anywhere}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin:12px 0}
.card{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:10px 14px;min-width:90px}
.card b{display:block;font-size:22px}.card span{font-size:12px;color:#6b7280}
.status{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.s-succeeded,.s-completed{background:#3ca951}.s-failed{background:#d64545}.s-running{background:#4269d0}
.s-stopped,.s-unknown{background:#9498a0}
.bar{display:flex;height:12px;border-radius:6px;overflow:hidden;background:#e3e6ea;max-width:560px}
.bar i{display:block}.ok{background:#3ca951}.bad{background:#d64545}.rt{background:#efb118}
table{border-collapse:collapse;font-size:12px;background:#fff}td,th{border:1px solid #e3e6ea;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f2f4f7}td.reason{max-width:640px;word-break:break-word}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:6px}
figure img{display:block;max-width:100%;margin:auto}figcaption{font-size:12px;margin-top:4px;word-break:break-all}
.tile-error{height:120px;display:flex;align-items:center;justify-content:center;text-align:center;
font-size:12px;color:#b42318;background:#fef3f2;border-radius:6px;padding:6px}
.mixed{font-size:13px;color:#b42318;background:#fef3f2;border:1px solid #fecdca;border-radius:6px;padding:6px 10px;
max-width:760px}
input[type=search]{padding:4px 8px;margin:6px 0;width:320px}
.charts{display:flex;flex-wrap:wrap;gap:24px}
"""

SCRIPT = """
(function(){
  var box=document.getElementById('failure-filter');
  if(box){box.addEventListener('input',function(){
    var q=box.value.toLowerCase(),rows=document.querySelectorAll('#failures tbody tr'),shown=0;
    rows.forEach(function(r){var hit=r.textContent.toLowerCase().indexOf(q)>=0;r.style.display=hit?'':'none';
      if(hit)shown++;});
    document.getElementById('failure-count').textContent=shown;
  });}
  var m=document.createElement('div');m.id='MARKER';m.hidden=true;m.textContent='ok';document.body.appendChild(m);
})();
""".replace("MARKER", MARKER)
