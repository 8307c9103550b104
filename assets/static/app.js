// Kekeli — optional enhancements only; every page works without this script.
document.addEventListener("submit", function (e) {
  var b = e.submitter || e.target.querySelector("button[type=submit]");
  if (b && b.classList.contains("danger") && !b.classList.contains("confirmed") && !window.confirm(b.textContent + " ?")) e.preventDefault();
});
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".js-print").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () { window.print(); });
  });
  // Roll call: a running count of absent and late pupils beside the save button.
  var form = document.querySelector("form.rollcall");
  if (!form) return;
  var button = form.querySelector("button[type=submit]");
  var label = button.textContent;
  function count() {
    var a = form.querySelectorAll("input[value=absent]:checked").length;
    var r = form.querySelectorAll("input[value=retard]:checked").length;
    // `{a|one|other}` takes the word for the number, as the server's messages do (French:
    // 0 and 1 singular).
    var text = (button.dataset.count || "").replace(/\{(a|r)\|([^|}]*)\|([^}]*)\}/g, function (_, k, one, other) {
      return (k === "a" ? a : r) <= 1 ? one : other;
    });
    button.textContent = label + " " + text.replace("{a}", a).replace("{r}", r);
  }
  form.addEventListener("change", count);
  count();
});
// Mark grid: Enter moves to the next pupil instead of submitting (Tab works as usual).
document.addEventListener("keydown", function (e) {
  var t = e.target;
  if (e.key !== "Enter" || !t.form || !t.form.classList.contains("marks") || t.tagName !== "INPUT") return;
  var inputs = Array.prototype.slice.call(t.form.querySelectorAll("input[name^=n_]"));
  var i = inputs.indexOf(t);
  if (i < 0) return;
  e.preventDefault();
  if (i + 1 < inputs.length) { inputs[i + 1].focus(); inputs[i + 1].select(); }
  else { t.form.querySelector("button[type=submit]").focus(); }
});
// Phone photos: a camera's 5–12 MB picture is redrawn at most 1600 px on its long side, as a
// JPEG, before it is sent (without this script the form still works; the server says the limit).
document.addEventListener("change", function (e) {
  var input = e.target, d = input.dataset;
  if (!d || !d.shrink || !input.files || input.files.length !== 1) return;
  var f = input.files[0], form = input.form, was = input.parentNode.querySelector(".shrunk");
  if (was) was.remove();
  if (!/^image\/(jpeg|png)$/.test(f.type) || !window.createImageBitmap || !window.DataTransfer) return;
  if (f.size <= Math.min(+d.shrink, 1500000)) return;
  function mo(n) { return (n / 1048576).toFixed(1).replace(".", ",") + " Mo"; }
  function done() {
    delete form.dataset.busy;
    if (form.dataset.waiting) { delete form.dataset.waiting; if (form.requestSubmit) form.requestSubmit(); else form.submit(); }
  }
  form.dataset.busy = "1";
  createImageBitmap(f).then(function (img) {
    var k = Math.min(1, 1600 / Math.max(img.width, img.height)), c = document.createElement("canvas");
    c.width = Math.round(img.width * k); c.height = Math.round(img.height * k);
    c.getContext("2d").drawImage(img, 0, 0, c.width, c.height);
    c.toBlob(function (b) {
      if (b && b.size < f.size) {
        var t = new DataTransfer();
        t.items.add(new File([b], f.name.replace(/\.[^.]*$/, "") + ".jpg", { type: "image/jpeg" }));
        input.files = t.files;
        var p = document.createElement("p");
        p.className = "hint shrunk"; p.setAttribute("aria-live", "polite");
        p.textContent = (d.shrunk || "{from} → {to}").replace("{from}", mo(f.size)).replace("{to}", mo(b.size));
        input.insertAdjacentElement("afterend", p);
      }
      done();
    }, "image/jpeg", 0.82);
  }).catch(done);
});
// A form whose photo is still being made smaller is sent once it is ready.
document.addEventListener("submit", function (e) {
  if (e.target.dataset && e.target.dataset.busy) { e.preventDefault(); e.target.dataset.waiting = "1"; }
}, true);
// Mark grid: a cell is checked when the cursor leaves it (the server checks again); on a
// phone the keypad is the decimal one and the codes abs, exc, nn are buttons above it.
document.addEventListener("DOMContentLoaded", function () {
  var table = document.querySelector("table.grid[data-scale]");
  var form = table && table.closest("form");
  if (!form) return;
  var scale = parseFloat(table.dataset.scale.replace(",", ".")), bad = table.dataset.bad || "";
  var inputs = Array.prototype.slice.call(form.querySelectorAll("input[name^=n_]")), last = null;
  function ok(v) {
    v = v.trim().toLowerCase();
    if (v === "" || v === "abs" || v === "exc" || v === "nn") return true;
    if (!/^\d+([.,]\d{1,2})?$/.test(v)) return false;
    var n = parseFloat(v.replace(",", "."));
    return n >= 0 && n <= scale;
  }
  function check(input) {
    var good = ok(input.value), row = input.closest("tr");
    if (good) { input.removeAttribute("aria-invalid"); input.removeAttribute("title"); }
    else { input.setAttribute("aria-invalid", "true"); input.title = bad; }
    if (row) row.classList.toggle("invalid", !good);
  }
  inputs.forEach(function (i) {
    i.addEventListener("focus", function () { last = i; });
    i.addEventListener("blur", function () { check(i); });
  });
  var codes = form.querySelector(".codes");
  if (!codes || !window.matchMedia || !window.matchMedia("(pointer: coarse)").matches) return;
  inputs.forEach(function (i) { i.setAttribute("inputmode", "decimal"); });
  codes.hidden = false;
  codes.addEventListener("mousedown", function (e) { e.preventDefault(); });
  codes.addEventListener("click", function (e) {
    var code = e.target.dataset && e.target.dataset.code;
    if (!code || !last) return;
    last.value = code;
    check(last);
    var next = inputs[inputs.indexOf(last) + 1];
    if (next) { next.focus(); next.select(); }
  });
});
