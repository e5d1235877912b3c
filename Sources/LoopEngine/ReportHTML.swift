import Foundation

/// `LoopReport` as one self-contained HTML page: inline CSS, SVG charts and a little JavaScript
/// (selecting a row shows its per-pass top tokens); nothing is fetched. Every token text goes
/// through `HTML.escape` (in markup) or `textContent` (in the script), never raw.
extension LoopReport {
    public func html() -> String {
        var page = HTMLPage()
        page.add("<header id=\"summary\"><h1>LoopVK report: \(HTML.escape(model))</h1>\(summaryTable())</header>")
        page.add(sequenceSection())
        page.add(exitSection())
        page.add(lensSection())
        page.add(detailSection())
        page.add(convergenceSection())
        page.add(gpuSection())
        page.add(evalSection())
        return page.render(title: "LoopVK report: \(model)", data: dataJSON())
    }

    // MARK: Sections

    func summaryTable() -> String {
        let T = passCount
        var rows: [(String, String)] = [
            ("model", "\(model) (\(modelType)), \(passCount) passes, vocabulary \(vocab)"),
            ("backend", backend + (profile.map { ", profiled on \($0.device)" } ?? "")),
            ("run", "\(promptTokens) prompt tokens, \(generated.count) generated (stop: \(stopReason)), exit \(exit), KV \(kv), \(greedy ? "greedy" : "sampled")"),
        ]
        if !generated.isEmpty {
            let used = positions.compactMap(\.decodePasses)
            let mean = Double(used.reduce(0, +)) / Double(max(used.count, 1))
            rows.append(("passes per generated token", String(format: "%.2f of %d (min %d, max %d)", mean, T, used.min() ?? 0, used.max() ?? 0)))
        }
        if let s = signal {
            rows.append(("exit signal", "\(s.name) \(s.comparison) \(HTML.number(s.threshold)) (\(s.policy)\(s.usedByRun ? "" : ", shown for reference: the run's policy does not read it"))"))
        }
        let lensNote = lensMatchesDecode
            ? "every decoded token's KV held real K/V of every pass, so the lens's readouts are decode's own"
            : "the lens computes every pass at every row; decode skipped passes (KV \(kv)), so rows after the first early exit can differ slightly from what decode saw"
        rows.append(("lens", "one call over prompt + generated tokens, top \(topK) per pass; \(lensNote)"))
        if greedy, agreement.count == 2, agreement[1] > 0 {
            rows.append(("lens vs decode", "\(agreement[0]) of \(agreement[1]) generated tokens are the lens's top token at the pass decode stopped at"))
        }
        return "<table class=\"kv\">" + rows.map { "<tr><th>\(HTML.escape($0.0))</th><td>\(HTML.escape($0.1))</td></tr>" }.joined() + "</table>"
    }

    func sequenceSection() -> String {
        // Token i of the sequence was predicted by row i - 1 (the first token by none).
        var chips = ""
        if let first = positions.first {
            chips += "<span class=\"chip first\" title=\"token \(first.token)\">\(HTML.escape(first.text))</span>"
        }
        for p in positions {
            guard let next = p.next, let text = p.nextText else { continue }
            let cls = p.nextGenerated ? "chip gen" : "chip"
            let passes = p.decodePasses.map { " · \($0)p" } ?? ""
            chips += "<span class=\"\(cls)\" data-row=\"\(p.index)\" title=\"token \(next), predicted by row \(p.index)\">\(HTML.escape(text))<small>\(passes)</small></span>"
        }
        return section("sequence", "Sequence", "The prompt, then the generated tokens (green, with the passes decode ran to produce each). Click a token to see how it was predicted, pass by pass (rows in the tables below are clickable too: row r reads token r and predicts token r + 1).",
                       "<div class=\"chips\">\(chips)</div>")
    }

    func exitSection() -> String {
        let T = passCount
        guard let s = signal else {
            return section("exit", "Exit decisions", "This family has no exit signal; every token ran \(exit == "none" ? "every pass" : "the passes of \(exit)").", decisionTable())
        }
        var table = "<div class=\"scroll\"><table class=\"heat\"><thead><tr><th>row</th><th>token</th><th>→ next</th><th>decode</th><th>rule</th>"
        for t in 1...T { table += "<th>\(t)</th>" }
        table += "</tr></thead><tbody>"
        for p in positions {
            table += "<tr data-row=\"\(p.index)\"\(p.nextGenerated ? " class=\"genrow\"" : "")><th>\(p.index)</th><td class=\"tok\">\(HTML.escape(p.text))</td><td class=\"tok\">\(HTML.escape(p.nextText ?? ""))</td>"
            table += "<td>\(p.decodePasses.map(String.init) ?? "all")</td><td>\(p.rulePasses)</td>"
            for (t, r) in p.passes.enumerated() {
                var cls = [String]()
                if let v = r.signal, Self.crosses(v, s) { cls.append("fires") }
                if let k = p.decodePasses { if t + 1 == k { cls.append("stop") } else if t + 1 > k { cls.append("skipped") } }
                let title = "pass \(t + 1): \(s.name) = \(r.signal.map(HTML.number) ?? "–")" + (r.exitActivation.map { ", exit activation \(HTML.number($0))" } ?? "")
                table += "<td class=\"\(cls.joined(separator: " "))\" title=\"\(HTML.escape(title))\">\(r.signal.map(HTML.number) ?? "–")</td>"
            }
            table += "</tr>"
        }
        table += "</tbody></table></div>"
        let rows = positions.filter { $0.decodePasses != nil }
        let chartRows = rows.isEmpty ? positions : rows
        let logY = s.comparison == "<"
        // Probabilities and CDFs on [0, 1]; criteria that fall towards a small threshold on a log scale.
        let unit = s.comparison != "<" && !s.policy.hasPrefix("argmax")
        let chart = SVGChart(title: "\(s.name) per pass" + (rows.isEmpty ? "" : " (generated tokens)"), xLabel: "pass", yLabel: s.name, logY: logY,
                             xTicks: Array(1...T), threshold: Double(s.threshold), yDomain: unit ? (0, 1) : nil)
            .lines(chartRows.map { p in (p.index, p.passes.enumerated().map { (Double($0.offset + 1), $0.element.signal.map(Double.init)) }) })
        let legend = "Green cells: the signal meets the threshold (\(HTML.escape(s.comparison)) \(HTML.number(s.threshold))). Outlined: the pass decode stopped after; faded: passes decode skipped (the lens computed them anyway). \"rule\": where the rule stops on the lens's own readouts."
        return section("exit", "Exit decisions", legend, decisionTable() + table + chart.render())
    }

    /// One line per generated token: passes run and why decode stopped there.
    func decisionTable() -> String {
        let rows = positions.filter { $0.decodePasses != nil }
        guard !rows.isEmpty else { return "<p class=\"note\">No tokens were generated (--max-tokens 0): every row is a prefill row.</p>" }
        var h = "<table class=\"list\"><thead><tr><th>row</th><th>generated</th><th>passes</th><th>why it stopped</th></tr></thead><tbody>"
        for p in rows {
            h += "<tr data-row=\"\(p.index)\"><td>\(p.index)</td><td class=\"tok\">\(HTML.escape(p.nextText ?? ""))</td><td>\(p.decodePasses!)</td><td>\(HTML.escape(stopReason(p)))</td></tr>"
        }
        return h + "</tbody></table>"
    }

    func stopReason(_ p: Position) -> String {
        let k = p.decodePasses ?? passCount
        if exit == "none" { return "no exit policy: every pass" }
        if exit.hasPrefix("fixed:") { return "\(exit): the first \(k) passes" }
        guard let s = signal, s.usedByRun else { return "\(k) passes" }
        let v = p.passes[k - 1].signal.map(HTML.number) ?? "–"
        if k < passCount { return "\(s.name) = \(v) \(s.comparison) \(HTML.number(s.threshold)) after pass \(k)" }
        return "the signal never met the threshold before the last pass (\(s.name) there: \(v))"
    }

    func lensSection() -> String {
        let T = passCount
        var top = "<div class=\"scroll\"><table class=\"heat lens\"><thead><tr><th>row</th><th>token</th><th>→ next</th>"
        var rank = "<div class=\"scroll\"><table class=\"heat rank\"><thead><tr><th>row</th><th>final token</th>"
        for t in 1...T { top += "<th>\(t)</th>"; rank += "<th>\(t)</th>" }
        top += "</tr></thead><tbody>"
        rank += "</tr></thead><tbody>"
        for p in positions {
            let final = p.passes.last?.top.first
            top += "<tr data-row=\"\(p.index)\"\(p.nextGenerated ? " class=\"genrow\"" : "")><th>\(p.index)</th><td class=\"tok\">\(HTML.escape(p.text))</td><td class=\"tok\">\(HTML.escape(p.nextText ?? ""))</td>"
            rank += "<tr data-row=\"\(p.index)\"><th>\(p.index)</th><td class=\"tok\">\(HTML.escape(final?.text ?? ""))</td>"
            for (t, r) in p.passes.enumerated() {
                let best = r.top.first
                let prob = best?.probability ?? 0
                var cls = best?.id == final?.id ? "final" : ""
                if let k = p.decodePasses, t + 1 > k { cls += " skipped" }
                // The script fills the cell's title (its top k) on hover, from the data block.
                top += "<td class=\"\(cls)\" style=\"\(HTML.probabilityStyle(prob))\" data-pass=\"\(t)\">\(HTML.escape(best?.text ?? ""))<small>\(String(format: "%.2f", prob))</small></td>"
                rank += "<td style=\"\(HTML.rankStyle(r.finalRank, vocab: vocab))\">\(r.finalRank)</td>"
            }
            top += "</tr>"
            rank += "</tr>"
        }
        top += "</tbody></table></div>"
        rank += "</tbody></table></div>"
        return section("lens", "Logit lens", "The head on each pass's state: the most probable next token and its probability (darker = more probable; bold = the final pass's token; hover for the top \(topK)). Below: the rank of the final pass's token at every pass (1 = top).",
                       top + "<h3>Rank of the final token</h3>" + rank)
    }

    func detailSection() -> String {
        section("detail", "Passes of the selected row", "Top \(topK) tokens per pass with probabilities, the final token's rank, the next token's rank, KL to the final pass, cosine to the final state and the exit signal.",
                "<div id=\"detail-title\" class=\"note\"></div><div class=\"scroll\"><table class=\"list\" id=\"detail-table\"></table></div>")
    }

    func convergenceSection() -> String {
        let T = passCount
        let xs = Array(1...T)
        func series(_ f: (PassReadout) -> Float) -> [(Int, [(Double, Double?)])] {
            positions.map { p in (p.index, p.passes.enumerated().map { (Double($0.offset + 1), Double(f($0.element))) }) }
        }
        let kl = SVGChart(title: "KL(pass t ‖ final pass), nats", xLabel: "pass", yLabel: "KL", logY: false, xTicks: xs, threshold: nil)
            .lines(series(\.klToFinal), mean: true)
        let cos = SVGChart(title: "cosine(state after pass t, final state)", xLabel: "pass", yLabel: "cosine", logY: false, xTicks: xs, threshold: nil)
            .lines(series(\.cosineToFinal), mean: true)
        return section("convergence", "Convergence", "One thin line per row (the selected row highlighted), the mean over rows in bold. Both reach the final pass exactly: KL 0, cosine 1.",
                       "<div class=\"charts\">" + kl.render() + cos.render() + "</div>")
    }

    func gpuSection() -> String {
        guard let prof = profile else {
            return section("gpu", "GPU time", HTML.escape(profileNote ?? "no profile"), "")
        }
        // Sections in the order the run first reached them; op kinds (fused dispatches are
        // labelled "a+b") in order of total time.
        var sections: [String] = []
        var cells: [String: [String: Double]] = [:], counts: [String: [String: Int]] = [:]
        var opTotal: [String: Double] = [:]
        let rows = prof.byOpAndPass.isEmpty ? prof.byPass : prof.byOpAndPass
        for r in rows {
            let op = Self.opLabel(r.op)
            if cells[r.section] == nil { sections.append(r.section) }
            cells[r.section, default: [:]][op, default: 0] += r.totalMicros
            counts[r.section, default: [:]][op, default: 0] += r.count
            opTotal[op, default: 0] += r.totalMicros
        }
        let ops = opTotal.keys.sorted { opTotal[$0]! > opTotal[$1]! }
        let bars = SVGBars(categories: sections, stacks: ops, value: { cells[$0]?[$1] ?? 0 }).render()
        var table = "<div class=\"scroll\"><table class=\"list num\"><thead><tr><th>section</th><th>total µs</th>" + ops.map { "<th>\(HTML.escape($0))</th>" }.joined() + "</tr></thead><tbody>"
        for s in sections {
            let total = cells[s]!.values.reduce(0, +)
            table += "<tr><th>\(HTML.escape(s))</th><td>\(String(format: "%.1f", total))</td>"
            for op in ops {
                if let us = cells[s]?[op] { table += "<td title=\"\(counts[s]?[op] ?? 0) runs\">\(String(format: "%.1f", us))</td>" } else { table += "<td></td>" }
            }
            table += "</tr>"
        }
        table += "</tbody></table></div>"
        let note = "GPU time of the profiled run (\(prof.promptTokens) prompt + \(prof.decodeTokens) generated tokens, prefill and decode together) on \(prof.device), \(prof.mode) mode: one timestamp pair per dispatch with dispatches serialised, so the sum is slower than an unprofiled run; compare shares, not absolute times. Hover a cell for its run count."
        return section("gpu", "GPU time per pass and op kind", HTML.escape(note), bars + table)
    }

    func evalSection() -> String {
        guard !evals.isEmpty else {
            return section("eval", "Accuracy", "Pass --eval FILE.json (the output of <code>loopvk eval --json</code>, one run per line) to plot accuracy against passes and exit thresholds.", "")
        }
        // Accuracy against passes: runs with every pass or a fixed pass count.
        var byPasses: [(Double, EvalReport)] = []
        var byThreshold: [String: [(Double, EvalReport)]] = [:]
        for e in evals {
            let r = e.report
            let parts = r.exit.split(separator: ":", maxSplits: 1).map(String.init)
            if r.exit == "none" { byPasses.append((Double(r.passes), r)) } else if parts.count == 2, let v = Double(parts[1]) {
                if parts[0] == "fixed" { byPasses.append((min(v, Double(r.passes)), r)) } else { byThreshold[parts[0], default: []].append((v, r)) }
            }
        }
        byPasses.sort { $0.0 < $1.0 }
        let difficulties = Set(evals.flatMap { $0.report.groups.map(\.difficulty) }).sorted()
        var charts = ""
        if !byPasses.isEmpty {
            var s: [(String, [(Double, Double?)])] = [("all", byPasses.map { ($0.0, $0.1.accuracy) })]
            if difficulties.count > 1 {
                for d in difficulties { s.append(("d\(d)", byPasses.map { p in (p.0, p.1.groups.first { $0.difficulty == d }?.accuracy) })) }
            }
            let xs = Array(Set(byPasses.map { Int($0.0) })).sorted()
            charts += SVGChart(title: "accuracy against passes", xLabel: "passes", yLabel: "accuracy", logY: false, xTicks: xs, threshold: nil, yDomain: (0, 1))
                .labelled(s).render()
        }
        for (policy, points) in byThreshold.sorted(by: { $0.key < $1.key }) {
            let sorted = points.sorted { $0.0 < $1.0 }
            let s: [(String, [(Double, Double?)])] = [("accuracy", sorted.map { ($0.0, $0.1.accuracy) }),
                                                        ("mean passes / \(sorted[0].1.passes)", sorted.map { ($0.0, $0.1.meanPasses / Double(max($0.1.passes, 1))) })]
            charts += SVGChart(title: "accuracy against the \(policy) threshold", xLabel: "\(policy) threshold", yLabel: "accuracy", logY: false,
                               xValues: sorted.map(\.0), threshold: nil, yDomain: (0, 1)).labelled(s).render()
        }
        var table = "<div class=\"scroll\"><table class=\"list num\"><thead><tr><th>source</th><th>exit</th><th>passes</th><th>tasks</th>"
        table += difficulties.map { "<th>d\($0)</th>" }.joined() + "<th>all</th><th>mean passes / token</th></tr></thead><tbody>"
        for e in evals {
            let r = e.report
            table += "<tr><td>\(HTML.escape(e.source))</td><td>\(HTML.escape(r.exit))</td><td>\(r.passes)</td><td>\(r.tasks)</td>"
            for d in difficulties { table += "<td>\(r.groups.first { $0.difficulty == d }.map { String(format: "%.3f", $0.accuracy) } ?? "")</td>" }
            table += "<td>\(String(format: "%.3f", r.accuracy))</td><td>\(String(format: "%.2f", r.meanPasses))</td></tr>"
        }
        table += "</tbody></table></div>"
        return section("eval", "Accuracy against passes and exit thresholds", "From \(evals.count) <code>loopvk eval --json</code> run(s); exact match, greedy.",
                       "<div class=\"charts\">\(charts)</div>" + table)
    }

    /// A fused dispatch's label with repeats counted: "kv_copy+kv_copy+kv_copy" -> "kv_copy×3".
    static func opLabel(_ label: String) -> String {
        var parts: [(String, Int)] = []
        for k in label.split(separator: "+").map(String.init) {
            if parts.last?.0 == k { parts[parts.count - 1].1 += 1 } else { parts.append((k, 1)) }
        }
        return parts.map { $0.1 > 1 ? "\($0.0)×\($0.1)" : $0.0 }.joined(separator: "+")
    }

    func section(_ id: String, _ title: String, _ note: String, _ body: String) -> String {
        "<section id=\"\(id)\"><h2>\(HTML.escape(title))</h2><p class=\"note\">\(note)</p>\(body)</section>"
    }

    static func crosses(_ v: Float, _ s: ExitSignalInfo) -> Bool {
        switch s.comparison {
        case ">=": return v >= s.threshold
        case ">": return v > s.threshold
        default: return v < s.threshold
        }
    }

    // MARK: Data for the script

    /// The rows the script reads (detail table, cell titles), compact: token texts once in
    /// `tokens`, per pass arrays, numbers to 4 significant digits. `<`, `>` and `&` are escaped
    /// (`\u003c`...) so nothing in it can close the script element.
    ///
    /// {"passCount":T, "signal":{...}|null, "tokens":{"id":"text"},
    ///  "rows":[{"i","tok","next","ng","d","r","top":[[id,p,...] per pass],"fr","nr","np","kl","cos","sig"}]}
    func dataJSON() -> String {
        func n(_ x: Float?) -> String {
            guard let x else { return "null" }
            if !x.isFinite { return "null" }
            return x == 0 ? "0" : String(format: "%.4g", x)
        }
        func list(_ xs: [String]) -> String { "[" + xs.joined(separator: ",") + "]" }
        var texts: [Int: String] = [:]
        var rows: [String] = []
        for p in positions {
            texts[p.token] = p.text
            if let next = p.next { texts[next] = p.nextText }
            var fields = ["\"i\":\(p.index)", "\"tok\":\(p.token)", "\"next\":\(p.next.map(String.init) ?? "null")", "\"ng\":\(p.nextGenerated)",
                          "\"d\":\(p.decodePasses.map(String.init) ?? "null")", "\"r\":\(p.rulePasses)"]
            var tops: [String] = []
            for r in p.passes {
                for c in r.top { texts[c.id] = c.text }
                tops.append(list(r.top.flatMap { ["\($0.id)", n($0.probability)] }))
            }
            fields.append("\"top\":" + list(tops))
            fields.append("\"fr\":" + list(p.passes.map { "\($0.finalRank)" }))
            fields.append("\"nr\":" + list(p.passes.map { $0.nextRank.map(String.init) ?? "null" }))
            fields.append("\"np\":" + list(p.passes.map { n($0.nextProbability) }))
            fields.append("\"kl\":" + list(p.passes.map { n($0.klToFinal) }))
            fields.append("\"cos\":" + list(p.passes.map { n($0.cosineToFinal) }))
            fields.append("\"sig\":" + list(p.passes.map { n($0.signal) }))
            rows.append("{" + fields.joined(separator: ",") + "}")
        }
        let tokenTable = texts.keys.sorted().map { "\"\($0)\":" + JSONText.string(texts[$0]!) }.joined(separator: ",")
        let signalJSON = signal.map { "{\"name\":\(JSONText.string($0.name)),\"comparison\":\(JSONText.string($0.comparison)),\"threshold\":\(n($0.threshold))}" } ?? "null"
        let json = "{\"passCount\":\(passCount),\"signal\":\(signalJSON),\"tokens\":{\(tokenTable)},\"rows\":[\n" + rows.joined(separator: ",\n") + "]}"
        return json.replacingOccurrences(of: "<", with: "\\u003c").replacingOccurrences(of: ">", with: "\\u003e").replacingOccurrences(of: "&", with: "\\u0026")
    }
}

/// JSON string literals (through JSONEncoder, so every escape is right).
enum JSONText {
    static func string(_ s: String) -> String {
        String(decoding: (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8), as: UTF8.self)
    }
}

enum HTML {
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Other control characters would make the page invalid: show their code.
                if c.value < 0x20 || c.value == 0x7f { out += String(format: "\\x%02x", c.value) } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    static func number(_ v: Float) -> String { number(Double(v)) }
    static func number(_ v: Double) -> String {
        if v == 0 { return "0" }
        if !v.isFinite { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
        let a = abs(v)
        return a >= 1e-3 && a < 1e4 ? String(format: "%.3g", v) : String(format: "%.2e", v)
    }

    /// Blue background, darker with probability; white text on dark cells.
    static func probabilityStyle(_ p: Float) -> String {
        let l = 97 - 57 * Double(max(0, min(1, p)))
        return String(format: "background:hsl(212,70%%,%.0f%%)%@", l, l < 60 ? ";color:#fff" : "")
    }

    /// Green for rank 1, fading with log(rank) over the vocabulary.
    static func rankStyle(_ rank: Int, vocab: Int) -> String {
        let f = 1 - log(Double(rank)) / log(Double(max(vocab, 2)))
        let l = 96 - 56 * max(0, min(1, f))
        return String(format: "background:hsl(140,55%%,%.0f%%)%@", l, l < 60 ? ";color:#fff" : "")
    }
}

/// A line chart in inline SVG over a numeric x axis.
struct SVGChart {
    var title: String
    var xLabel: String
    var yLabel: String
    var logY: Bool
    var xs: [Double]
    var threshold: Double?
    var yDomain: (Double, Double)?
    /// (row or -1, label, css class, points)
    var paths: [(row: Int, label: String?, cls: String, points: [(Double, Double?)])] = []

    init(title: String, xLabel: String, yLabel: String, logY: Bool, xTicks: [Int], threshold: Double?, yDomain: (Double, Double)? = nil) {
        self.init(title: title, xLabel: xLabel, yLabel: yLabel, logY: logY, xValues: xTicks.map(Double.init), threshold: threshold, yDomain: yDomain)
    }
    init(title: String, xLabel: String, yLabel: String, logY: Bool, xValues: [Double], threshold: Double?, yDomain: (Double, Double)? = nil) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.logY = logY; self.xs = xValues
        self.threshold = threshold; self.yDomain = yDomain
    }

    /// One thin line per row (`data-row` for the script), and optionally their mean in bold.
    func lines(_ rows: [(Int, [(Double, Double?)])], mean: Bool = false) -> SVGChart {
        var c = self
        for (row, pts) in rows { c.paths.append((row, nil, "row", pts)) }
        if mean, let n = rows.first?.1.count {
            var m: [(Double, Double?)] = []
            for i in 0..<n {
                let vs = rows.compactMap { $0.1[i].1 }
                m.append((rows[0].1[i].0, vs.isEmpty ? nil : vs.reduce(0, +) / Double(vs.count)))
            }
            c.paths.append((-1, "mean", "mean", m))
        }
        return c
    }

    /// Named series with markers and a legend.
    func labelled(_ series: [(String, [(Double, Double?)])]) -> SVGChart {
        var c = self
        for (i, s) in series.enumerated() { c.paths.append((-1, s.0, "s\(i % 8)", s.1)) }
        return c
    }

    func render() -> String {
        let legendWidth = paths.contains { $0.label != nil && $0.cls != "mean" } ? 96.0 : 0
        let w = 460.0 + legendWidth, h = 250.0, left = 58.0, right = 12.0 + legendWidth, top = 26.0, bottom = 40.0
        let pw = w - left - right, ph = h - top - bottom
        let values = paths.flatMap { $0.points.compactMap(\.1) }.filter(\.isFinite) + (threshold.map { [$0] } ?? [])
        let floor = 1e-12
        func ty(_ v: Double) -> Double { logY ? log10(max(v, floor)) : v }
        var lo: Double, hi: Double
        if let d = yDomain { (lo, hi) = (ty(d.0), ty(d.1)) } else {
            let tv = values.map(ty)
            lo = tv.min() ?? 0; hi = tv.max() ?? 1
            if logY { lo = max(lo, (tv.max() ?? 0) - 12) }
            if hi - lo < 1e-9 { lo -= 0.5; hi += 0.5 }
            let pad = (hi - lo) * 0.06
            // No padding past 0 for values that cannot go below it, or past 1 for cosines.
            if lo >= 0 { lo = max(0, lo - pad) } else { lo -= pad }
            if hi <= 1 && hi > 0.9 && !logY { hi = 1 } else { hi += pad }
        }
        let x0 = xs.min() ?? 0, x1 = max(xs.max() ?? 1, x0 + 1e-9)
        func px(_ x: Double) -> Double { xs.count == 1 ? left + pw / 2 : left + (x - x0) / (x1 - x0) * pw }
        func py(_ v: Double) -> Double { top + (1 - (min(max(ty(v), lo), hi) - lo) / (hi - lo)) * ph }

        var s = "<svg class=\"chart\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\">"
        s += "<text x=\"\(Int(left))\" y=\"16\" class=\"title\">\(HTML.escape(title))</text>"
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(pw)\" height=\"\(ph)\" class=\"frame\"/>"
        // x ticks: at most ~16 labels.
        let step = max(1, Int((Double(xs.count) / 16).rounded(.up)))
        for (i, x) in xs.enumerated() where i % step == 0 || (i == xs.count - 1 && i % step >= (step + 1) / 2) {
            s += "<line x1=\"\(f(px(x)))\" x2=\"\(f(px(x)))\" y1=\"\(f(top + ph))\" y2=\"\(f(top + ph + 4))\" class=\"tick\"/>"
            s += "<text x=\"\(f(px(x)))\" y=\"\(f(top + ph + 15))\" class=\"xt\">\(HTML.number(x))</text>"
        }
        for i in 0...4 {
            let tv = lo + (hi - lo) * Double(i) / 4
            let v = logY ? pow(10, tv) : tv
            let y = top + (1 - Double(i) / 4) * ph
            s += "<line x1=\"\(left)\" x2=\"\(f(left + pw))\" y1=\"\(f(y))\" y2=\"\(f(y))\" class=\"grid\"/><text x=\"\(f(left - 4))\" y=\"\(f(y + 4))\" class=\"yt\">\(HTML.number(v))</text>"
        }
        s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(h - 6))\" class=\"xl\">\(HTML.escape(xLabel))</text>"
        s += "<text x=\"12\" y=\"\(f(top + ph / 2))\" class=\"yl\" transform=\"rotate(-90 12 \(f(top + ph / 2)))\">\(HTML.escape(yLabel + (logY ? " (log)" : "")))</text>"
        if let t = threshold {
            s += "<line x1=\"\(left)\" x2=\"\(f(left + pw))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\" class=\"threshold\"/><text x=\"\(f(left + pw - 2))\" y=\"\(f(py(t) - 3))\" class=\"thr\">threshold \(HTML.number(t))</text>"
        }
        var legend = 0
        for p in paths {
            var d = "", pen = false
            for (x, v) in p.points {
                guard let v, v.isFinite else { pen = false; continue }
                d += "\(pen ? "L" : "M")\(f(px(x))),\(f(py(v)))"
                pen = true
            }
            if d.isEmpty { continue }
            let row = p.row >= 0 ? " data-row=\"\(p.row)\"" : ""
            s += "<path d=\"\(d)\" class=\"\(p.cls)\"\(row)><title>\(HTML.escape(p.label ?? "row \(p.row)"))</title></path>"
            if let label = p.label, p.cls != "mean" {
                for (x, v) in p.points { if let v, v.isFinite { s += "<circle cx=\"\(f(px(x)))\" cy=\"\(f(py(v)))\" r=\"2.5\" class=\"\(p.cls)\"/>" } }
                s += "<text x=\"\(f(left + pw + 8))\" y=\"\(f(top + 10 + Double(legend) * 12))\" class=\"legend \(p.cls)\">\(HTML.escape(label))</text>"
                legend += 1
            }
        }
        return s + "</svg>"
    }

    func f(_ v: Double) -> String { String(format: "%.1f", v) }
}

/// Horizontal stacked bars in inline SVG: one bar per category, one colour per stack key.
struct SVGBars {
    var categories: [String]
    var stacks: [String]
    var value: (String, String) -> Double

    func render() -> String {
        let left = 120.0, barH = 16.0, gap = 5.0, w = 760.0, pw = w - left - 70
        let totals = categories.map { c in stacks.reduce(0) { $0 + value(c, $1) } }
        let maxTotal = max(totals.max() ?? 1, 1e-9)
        let legendRows = (stacks.count + 3) / 4
        let h = 10 + Double(categories.count) * (barH + gap) + 16 + Double(legendRows) * 16
        var s = "<svg class=\"chart bars\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\">"
        for (i, c) in categories.enumerated() {
            let y = 6 + Double(i) * (barH + gap)
            s += "<text x=\"\(left - 6)\" y=\"\(y + barH - 4)\" class=\"yt\">\(HTML.escape(c))</text>"
            var x = left
            for (k, op) in stacks.enumerated() {
                let v = value(c, op)
                guard v > 0 else { continue }
                let bw = v / maxTotal * pw
                s += "<rect x=\"\(String(format: "%.1f", x))\" y=\"\(y)\" width=\"\(String(format: "%.2f", bw))\" height=\"\(barH)\" class=\"op\(k % 12)\"><title>\(HTML.escape("\(c) \(op): \(String(format: "%.1f", v)) µs"))</title></rect>"
                x += bw
            }
            s += "<text x=\"\(String(format: "%.1f", x + 4))\" y=\"\(y + barH - 4)\" class=\"val\">\(String(format: "%.0f µs", totals[i]))</text>"
        }
        let ly = 10 + Double(categories.count) * (barH + gap) + 6
        for (k, op) in stacks.enumerated() {
            let x = 10 + Double(k % 4) * 185, y = ly + Double(k / 4) * 16
            s += "<rect x=\"\(x)\" y=\"\(y)\" width=\"10\" height=\"10\" class=\"op\(k % 12)\"/><text x=\"\(x + 14)\" y=\"\(y + 9)\" class=\"legend\">\(HTML.escape(op))</text>"
        }
        return s + "</svg>"
    }
}

/// The page around the sections: styles, the data block and the script.
struct HTMLPage {
    private var body: [String] = []
    mutating func add(_ s: String) { body.append(s) }

    func render(title: String, data: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(HTML.escape(title))</title>
        <style>\(Self.css)</style></head>
        <body>
        \(body.joined(separator: "\n"))
        <script type="application/json" id="report-data">\(data)</script>
        <script>\(Self.script)</script>
        </body></html>

        """
    }

    static let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#8c564b"]

    static let css: String = {
        var c = """
        body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:12px 20px 40px;max-width:1280px;color:#1d2733;background:#fafbfc}
        h1{font-size:20px;margin:6px 0 10px}h2{font-size:17px;margin:0 0 4px}h3{font-size:14px;margin:12px 0 4px}
        section{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:12px 14px;margin:14px 0}
        .note{color:#4a5868;margin:2px 0 8px;font-size:13px}code{background:#eef1f4;padding:0 3px;border-radius:3px}
        table{border-collapse:collapse;font-size:12px}th,td{padding:2px 5px;border:1px solid #e3e8ee;text-align:left;white-space:nowrap}
        table.kv th{background:#f1f4f7;font-weight:600}table.kv td{white-space:normal}
        .scroll{overflow:auto;max-height:520px;margin:6px 0;border:1px solid #eef1f4}
        .heat th:first-child,.heat td.tok{position:sticky;background:#f7f9fb}.heat th:first-child{left:0;z-index:1}
        .heat thead th{position:sticky;top:0;background:#f1f4f7;z-index:2}
        .heat td{min-width:34px;max-width:70px;overflow:hidden;text-overflow:ellipsis;text-align:center;font-family:ui-monospace,Menlo,monospace}
        .heat td small{display:block;font-size:9px;opacity:.8}
        .heat td.tok{text-align:left;max-width:120px}
        .heat td.final{font-weight:700}.heat td.skipped{opacity:.35}.heat td.stop{outline:2px solid #c2410c;outline-offset:-2px}
        .heat td.fires{background:#bfe8c6}.heat tr.sel th,.list tr.sel td{background:#ffe9a8!important}
        tr[data-row]{cursor:pointer}.list.num td{text-align:right}
        .chips{display:flex;flex-wrap:wrap;gap:3px}.chip{font-family:ui-monospace,Menlo,monospace;padding:1px 5px;border:1px solid #cfd7e0;border-radius:4px;background:#f3f6f9;cursor:pointer}
        .chip small{color:#2f6b3a;margin-left:2px}.chip.gen{background:#e3f4e6;border-color:#9ccfa6}.chip.first{cursor:default}.chip.sel{outline:2px solid #c2410c}
        .charts{display:flex;flex-wrap:wrap;gap:10px}svg.chart{background:#fff;font-size:10px;max-width:100%}
        svg .title{font-size:12px;font-weight:600;fill:#1d2733}svg .frame{fill:none;stroke:#c9d2dc}svg .grid{stroke:#eef1f4}svg .tick{stroke:#8795a4}
        svg .xt{text-anchor:middle;fill:#4a5868}svg .yt{text-anchor:end;fill:#4a5868}svg .xl{text-anchor:middle;fill:#4a5868}svg .yl{text-anchor:middle;fill:#4a5868}
        svg .threshold{stroke:#c2410c;stroke-dasharray:4 3}svg .thr{text-anchor:end;fill:#c2410c}
        svg path{fill:none}svg path.row{stroke:#9fb3c8;stroke-width:1;opacity:.7}svg path.row.sel{stroke:#c2410c;stroke-width:2.5;opacity:1}
        svg path.mean{stroke:#1d2733;stroke-width:2.2}svg .val{fill:#4a5868}svg .legend{fill:#1d2733}
        #detail-table td.bar{min-width:110px}.pbar{display:inline-block;height:8px;background:#4e79a7;margin-right:4px;vertical-align:middle}
        #detail-table tr.stop td{background:#fff1e6}#detail-table tr.skipped td{color:#8795a4}
        """
        for (i, col) in palette.enumerated() { c += "svg .op\(i){fill:\(col)}" }
        for i in 0..<8 { let col = palette[i]; c += "svg path.s\(i){stroke:\(col);stroke-width:2}svg circle.s\(i){fill:\(col)}svg text.s\(i){fill:\(col)}" }
        return c
    }()

    static let script = """
    (function(){
      const D = JSON.parse(document.getElementById('report-data').textContent);
      const name = id => (id in D.tokens) ? D.tokens[id] : ('#' + id);
      const num = v => (v === null || v === undefined) ? '–'
        : (v === 0) ? '0' : (Math.abs(v) >= 1e-3 && Math.abs(v) < 1e4) ? String(Number(v.toPrecision(3))) : v.toExponential(2);
      const pairs = a => { const out = []; for (let k = 0; k + 1 < a.length; k += 2) out.push([a[k], a[k + 1]]); return out; };
      function cell(tr, text, cls) { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
      function select(r) {
        const p = D.rows[r]; if (!p) return;
        document.querySelectorAll('.sel').forEach(e => e.classList.remove('sel'));
        document.querySelectorAll('[data-row="' + r + '"]').forEach(e => e.classList.add('sel'));
        const how = p.d ? ('decode ran ' + p.d + ' of ' + D.passCount + ' passes') : 'prefill row: every pass ran';
        document.getElementById('detail-title').textContent = 'Row ' + r + ' reads "' + name(p.tok) + '" (id ' + p.tok + ')' +
          (p.next !== null ? ' and predicts "' + name(p.next) + '"' + (p.ng ? ' (generated)' : ' (prompt)') : '') +
          '; ' + how + '; the exit rule on these readouts stops after pass ' + p.r + '.';
        const t = document.getElementById('detail-table'); t.textContent = '';
        const head = t.createTHead().insertRow();
        const cols = ['pass'];
        const k = p.top.length ? p.top[0].length / 2 : 0;
        for (let j = 0; j < k; j++) cols.push('top ' + (j + 1));
        cols.push('final rank', 'next rank (p)', 'KL to final', 'cos to final');
        if (D.signal) cols.push(D.signal.name + ' ' + D.signal.comparison + ' ' + num(D.signal.threshold));
        cols.forEach(c => { const th = document.createElement('th'); th.textContent = c; head.appendChild(th); });
        const body = t.createTBody();
        p.top.forEach((top, i) => {
          const tr = body.insertRow();
          if (p.d && i + 1 === p.d) tr.className = 'stop';
          else if (p.d && i + 1 > p.d) tr.className = 'skipped';
          cell(tr, String(i + 1));
          pairs(top).forEach(([id, prob]) => {
            const td = cell(tr, '', 'bar'); const b = document.createElement('span'); b.className = 'pbar';
            b.style.width = Math.round(60 * prob) + 'px'; td.appendChild(b);
            td.appendChild(document.createTextNode(name(id) + ' ' + prob.toFixed(3)));
          });
          cell(tr, String(p.fr[i]));
          cell(tr, p.nr[i] !== null ? (p.nr[i] + ' (' + p.np[i].toFixed(3) + ')') : '–');
          cell(tr, num(p.kl[i])); cell(tr, num(p.cos[i]));
          if (D.signal) cell(tr, num(p.sig[i]));
        });
      }
      document.addEventListener('click', e => { const el = e.target.closest('[data-row]'); if (el) select(Number(el.dataset.row)); });
      document.addEventListener('mouseover', e => {
        const td = e.target.closest('td[data-pass]'); if (!td || td.title) return;
        const tr = td.closest('tr[data-row]'); const p = tr && D.rows[Number(tr.dataset.row)]; if (!p) return;
        const t = Number(td.dataset.pass);
        td.title = 'pass ' + (t + 1) + ': ' + pairs(p.top[t]).map(([id, prob]) => name(id) + ' ' + prob.toFixed(3)).join(', ');
      });
      const firstDecoded = D.rows.findIndex(p => p.d);
      select(firstDecoded >= 0 ? firstDecoded : D.rows.length - 1);
    })();
    """
}
