import Foundation
import LoopEngine
import Testing
@testable import LoopServer

func parse(_ body: String, _ endpoint: Endpoint = .completions) throws(APIError) -> GenerationRequest {
    try GenerationRequest.parse(Data(body.utf8), endpoint: endpoint)
}

/// The 400 a body gets (nil when it parses).
func rejection(_ body: String, _ endpoint: Endpoint = .completions) -> APIError? {
    do { _ = try parse(body, endpoint); return nil } catch { return error }
}

@Suite struct RequestParsingTests {
    @Test func completionWithEveryParameter() throws {
        let r = try parse(#"{"model": "m", "prompt": "Q: 1 plus 2 A:", "max_tokens": 8, "temperature": 0, "top_p": 0.9, "seed": 7,"#
            + #" "stop": ["\n", "Q:"], "n": 1, "stream": true, "stream_options": {"include_usage": true}, "user": "u","#
            + #" "loop": {"passes": 2, "kv": "shared", "min_passes": 1}}"#)
        #expect(r.model == "m")
        #expect(r.prompt == .text("Q: 1 plus 2 A:"))
        #expect(r.maxTokens == 8)
        #expect(r.temperature == 0)
        #expect(r.topP == 0.9)
        #expect(r.seed == 7)
        #expect(r.stop == ["\n", "Q:"])
        #expect(r.stream && r.includeUsageInStream)
        #expect(r.loop == LoopRequestOptions(passes: 2, exit: nil, kv: .shared, minPasses: 1))
    }

    @Test func defaultsFollowOpenAI() throws {
        let r = try parse(#"{"prompt": "hi"}"#)
        #expect(r.temperature == 1 && r.topP == 1 && r.maxTokens == nil && !r.stream && r.stop.isEmpty && r.seed == nil)
        #expect(try parse(#"{"prompt": "hi", "stop": "x"}"#).stop == ["x"])
        #expect(try parse(#"{"prompt": [1, 2, 3]}"#).prompt == .tokens([1, 2, 3]))
        #expect(try parse(#"{"prompt": ["one"]}"#).prompt == .text("one"))
        #expect(try parse(#"{"prompt": "hi", "max_completion_tokens": 3}"#).maxTokens == 3)
        #expect(try parse(#"{"prompt": "hi", "seed": -1}"#).seed == UInt64.max)
        #expect(try parse(#"{"prompt": "hi", "ignore_eos": true}"#).ignoreEOS)
    }

    @Test func chatMessages() throws {
        let r = try parse(#"{"messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "x"}],"#
            + #" "loop": {"exit": "q-exit:0.5"}}"#, .chatCompletions)
        #expect(r.prompt == .chat([ChatMessage(role: "system", content: "be brief"), ChatMessage(role: "user", content: "ab")]))
        #expect(r.loop.exit == "q-exit:0.5")
    }

    @Test func malformedJSON() {
        // (Foundation's JSONDecoder accepts a trailing comma, so `{"prompt": "x",}` parses.)
        for body in ["{bad", "", "[1, 2", #"{"prompt": "x" "n": 1}"#, "{'prompt': 'x'}"] {
            let e = rejection(body)
            #expect(e?.status == 400 && e?.code == "invalid_json", "\(body)")
        }
        #expect(rejection("[1]")?.message.contains("must be a JSON object") == true)
    }

    @Test func wrongTypesNameTheParameter() {
        let cases: [(String, String)] = [
            (#"{"prompt": "x", "max_tokens": "8"}"#, "max_tokens"),
            (#"{"prompt": "x", "max_tokens": 1.5}"#, "max_tokens"),
            (#"{"prompt": "x", "temperature": true}"#, "temperature"),
            (#"{"prompt": "x", "stream": 1}"#, "stream"),
            (#"{"prompt": "x", "stop": 3}"#, "stop"),
            (#"{"prompt": "x", "stop": ["a", 3]}"#, "stop"),
            (#"{"prompt": 5}"#, "prompt"),
            (#"{"prompt": "x", "loop": {"passes": "2"}}"#, "loop.passes"),
            (#"{"prompt": "x", "loop": {"kv": "paged"}}"#, "loop.kv"),
            (#"{"prompt": "x", "loop": {"depth": 3}}"#, "loop.depth"),
            (#"{"prompt": "x", "loop": 3}"#, "loop"),
            (#"{"messages": "hi"}"#, "messages"),
            (#"{"messages": [{"role": "tool", "content": "x"}]}"#, "messages[0].role"),
            (#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}"#, "messages[0].content"),
        ]
        for (body, param) in cases {
            let e = rejection(body, body.contains("messages") ? .chatCompletions : .completions)
            #expect(e?.status == 400, "\(body)")
            #expect(e?.param == param, "\(body): \(String(describing: e))")
            #expect(e?.type == "invalid_request_error")
        }
    }

    @Test func outOfRangeValues() {
        for body in [#"{"prompt": "x", "temperature": 3}"#, #"{"prompt": "x", "top_p": 0}"#, #"{"prompt": "x", "max_tokens": -1}"#,
                     #"{"prompt": "x", "max_tokens": 100000000}"#, #"{"prompt": "x", "loop": {"passes": 0}}"#, #"{"prompt": ""}"#,
                     #"{"prompt": "x", "stop": [""]}"#, #"{"prompt": "x", "stream_options": {"include_usage": true}}"#] {
            #expect(rejection(body)?.status == 400, "\(body)")
        }
    }

    @Test func nMustBeOne() {
        #expect(rejection(#"{"prompt": "x", "n": 2}"#)?.param == "n")
        #expect(rejection(#"{"prompt": "x", "n": 0}"#)?.param == "n")
        #expect(rejection(#"{"messages": [{"role": "user", "content": "x"}], "n": 3}"#, .chatCompletions)?.param == "n")
        #expect(rejection(#"{"prompt": "x", "n": 1}"#) == nil)
    }

    @Test func fieldsThatMatterAreRefusedHarmlessOnesIgnored() {
        for (body, param) in [(#"{"prompt": "x", "logprobs": 5}"#, "logprobs"), (#"{"prompt": "x", "echo": true}"#, "echo"),
                              (#"{"prompt": "x", "best_of": 3}"#, "best_of"), (#"{"prompt": "x", "logit_bias": {"1": 5}}"#, "logit_bias"),
                              (#"{"prompt": "x", "suffix": "y"}"#, "suffix"), (#"{"prompt": "x", "presence_penalty": 0.5}"#, "presence_penalty"),
                              (#"{"prompt": "x", "frobnicate": 1}"#, "frobnicate"), (#"{"prompt": "x", "messages": []}"#, "messages")] {
            let e = rejection(body)
            #expect(e?.status == 400 && e?.param == param, "\(body): \(String(describing: e))")
        }
        let chat = #"{"messages": [{"role": "user", "content": "x"}]"#
        for extra in [#""logprobs": true"#, #""top_logprobs": 2"#, #""tools": [{"type": "function"}]"#, #""response_format": {"type": "json_object"}"#] {
            #expect(rejection(chat + ", " + extra + "}", .chatCompletions)?.status == 400, "\(extra)")
        }
        for extra in [#""user": "me""#, #""logprobs": false"#, #""tools": []"#, #""response_format": {"type": "text"}"#, #""metadata": {"a": "b"}"#,
                      #""presence_penalty": 0"#, #""frequency_penalty": 0"#] {
            #expect(rejection(chat + ", " + extra + "}", .chatCompletions) == nil, "\(extra)")
        }
        #expect(rejection(#"{"prompt": ["a", "b"]}"#)?.code == "unsupported_parameter")
    }

    @Test func errorShapeIsOpenAIs() {
        let e = APIError.invalid("bad", param: "n", code: "invalid_value")
        #expect(e.json.serialized == #"{"error":{"message":"bad","type":"invalid_request_error","param":"n","code":"invalid_value"}}"#)
        #expect(APIError.server("x").json.serialized == #"{"error":{"message":"x","type":"server_error","param":null,"code":null}}"#)
        let q = APIError.queueFull(depth: 3)
        #expect(q.status == 429 && q.retryAfter == 1)
    }
}

@Suite struct JSONValueTests {
    @Test func keepsKinds() throws {
        let v = try JSONValue.parse(Data(#"{"b": true, "i": 1, "d": 1.5, "s": "x", "n": null, "a": [1, "2"]}"#.utf8))
        #expect(v["b"] == .bool(true))
        #expect(v["i"] == .int(1))
        #expect(v["d"] == .double(1.5))
        #expect(v["s"] == .string("x"))
        #expect(v["n"] == .null)
        #expect(v["a"] == .array([.int(1), .string("2")]))
    }

    @Test func serializesEscapes() {
        #expect(JSONValue.string("a\"b\\c\nd\u{1}é").serialized == #""a\"b\\c\nd\u0001é""#)
        #expect(JSONValue.obj(["z": .int(1), "a": .double(0.25), "x": .double(.nan)]).serialized == #"{"z":1,"a":0.25,"x":null}"#)
    }
}
