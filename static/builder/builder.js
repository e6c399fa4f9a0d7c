/* The builder's small interactions: dragging fields into order, adding a
   choice row, and keeping the keyboard focus where it was after htmx swaps.
   Every one of them has a plain-form fallback in the page. */
(function () {
  "use strict";

  function submitOrder(form) {
    if (window.htmx) {
      window.htmx.trigger(form, "submit");
    } else {
      form.submit();
    }
  }

  function setUpSortable(list) {
    if (list.dataset.sortableReady) return;
    list.dataset.sortableReady = "1";
    var dragged = null;
    list.addEventListener("dragstart", function (event) {
      dragged = event.target.closest(".b-field");
      if (!dragged) return;
      dragged.classList.add("b-dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", dragged.dataset.name);
    });
    list.addEventListener("dragend", function () {
      if (dragged) dragged.classList.remove("b-dragging");
      list.querySelectorAll(".b-drop-above, .b-drop-below").forEach(function (el) {
        el.classList.remove("b-drop-above", "b-drop-below");
      });
      dragged = null;
    });
    list.addEventListener("dragover", function (event) {
      var target = event.target.closest(".b-field");
      if (!dragged || !target || target === dragged) return;
      event.preventDefault();
      var box = target.getBoundingClientRect();
      var below = event.clientY > box.top + box.height / 2;
      target.classList.toggle("b-drop-below", below);
      target.classList.toggle("b-drop-above", !below);
    });
    list.addEventListener("dragleave", function (event) {
      var target = event.target.closest(".b-field");
      if (target) target.classList.remove("b-drop-above", "b-drop-below");
    });
    list.addEventListener("drop", function (event) {
      var target = event.target.closest(".b-field");
      if (!dragged || !target || target === dragged) return;
      event.preventDefault();
      var box = target.getBoundingClientRect();
      var below = event.clientY > box.top + box.height / 2;
      list.insertBefore(dragged, below ? target.nextSibling : target);
      submitOrder(list.closest("form"));
    });
  }

  function setUpChoices(editor) {
    var button = editor.querySelector("[data-add-choice]");
    var template = editor.querySelector("#choice-row-template");
    var rows = editor.querySelector("[data-choice-rows]");
    var total = editor.querySelector("input[name$='-TOTAL_FORMS']");
    if (!button || !template || !rows || !total) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var index = parseInt(total.value, 10);
      var html = template.innerHTML
        .replace(/__prefix__/g, String(index))
        .replace(/__number__/g, String(index + 1));
      rows.insertAdjacentHTML("beforeend", html);
      total.value = String(index + 1);
      var input = rows.lastElementChild.querySelector("input[type=text]");
      if (input) input.focus();
    });
  }

  function setUp(root) {
    root.querySelectorAll("[data-sortable]").forEach(setUpSortable);
    var wanted = root.querySelector("[data-focus]");
    if (wanted) {
      var target = document.getElementById(wanted.dataset.focus);
      if (target && target.disabled) {
        // At the top or the bottom: its other button.
        var other = target.id.replace(/-(up|down)$/, function (m, d) { return d === "up" ? "-down" : "-up"; });
        target = document.getElementById(other);
      }
      if (target) {
        target.focus();
        // htmx may settle focus after this handler: claim it once more.
        setTimeout(function () { if (document.body.contains(target)) target.focus(); }, 0);
      }
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUp(document);
    document.querySelectorAll("#choices-editor").forEach(setUpChoices);
  });
  document.addEventListener("htmx:afterSettle", function () {
    setUp(document);
  });
})();
