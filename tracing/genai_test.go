package tracing_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/streamguard/streamguard/gatewaytest"
	"github.com/streamguard/streamguard/sse"
	"github.com/streamguard/streamguard/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconvgenai "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/semconv/v1.41.0/genaiconv"
)

// genPoint is one data point of a GenAI histogram.
type genPoint struct {
	attrs  attribute.Set
	count  uint64
	sum    float64
	bounds []float64
	unit   string
}

// genaiPoints collects the data points of every histogram by name.
func genaiPoints(t *testing.T, m *meterRecorder) map[string][]genPoint {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := m.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string][]genPoint{}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			switch data := md.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					out[md.Name] = append(out[md.Name], genPoint{dp.Attributes, dp.Count, dp.Sum, dp.Bounds, md.Unit})
				}
			case metricdata.Histogram[int64]:
				for _, dp := range data.DataPoints {
					out[md.Name] = append(out[md.Name], genPoint{dp.Attributes, dp.Count, float64(dp.Sum), dp.Bounds, md.Unit})
				}
			}
		}
	}
	return out
}

// genaiCall sends body to h through tracing over the real stream guard,
// reads the response to its end, and returns the span.
func genaiCall(t *testing.T, h http.Handler, cfg tracing.Config, f *fixture, body string) sdktrace.ReadOnlySpan {
	t.Helper()
	srv := quietServer(t, h, false)
	client := &http.Client{Transport: tracing.NewTransport(sse.NewTransport(srv.Client().Transport, sse.Config{}), cfg)}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return f.waitSpan(t)
}

// genaiReq is a request body whose "model" comes after its messages, as
// openai-go writes it.
const genaiReq = `{"messages":[{"role":"user","content":"say \"model\": no"}],"model":"m-req","stream":true}`

func TestGenAISpans(t *testing.T) {
	for _, tc := range []struct {
		name     string
		h        http.Handler
		provider attribute.KeyValue
		id       string
		finish   string
	}{
		{"openai chat", gatewaytest.ChatStreamWithUsage(5), semconvgenai.GenAIProviderNameOpenAI, gatewaytest.GenAIChatID, gatewaytest.GenAIChatFinish},
		{"responses", gatewaytest.ResponsesStreamWithUsage(5), semconvgenai.GenAIProviderNameOpenAI, gatewaytest.GenAIResponsesID, "completed"},
		{"anthropic", gatewaytest.AnthropicStreamWithUsage(5), semconvgenai.GenAIProviderNameAnthropic, gatewaytest.GenAIAnthropicID, gatewaytest.GenAIAnthropicStop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, mr, cfg := meteredFixture(t)
			s := genaiCall(t, tc.h, cfg, f, genaiReq)
			got := attrs(s)
			check := func(kv attribute.KeyValue) {
				t.Helper()
				if v, ok := got[string(kv.Key)]; !ok || v != kv.Value {
					t.Errorf("%s = %v (present %v), want %v", kv.Key, v.String(), ok, kv.Value.String())
				}
			}
			check(semconvgenai.GenAIOperationNameChat)
			check(tc.provider)
			check(semconvgenai.GenAIRequestModel("m-req"))
			check(semconvgenai.GenAIResponseID(tc.id))
			check(semconvgenai.GenAIResponseModel(gatewaytest.GenAIModel))
			check(semconvgenai.GenAIUsageInputTokens(gatewaytest.GenAIInputTokens))
			check(semconvgenai.GenAIUsageOutputTokens(gatewaytest.GenAIOutputTokens))
			if v := got[string(semconvgenai.GenAIResponseFinishReasonsKey)].AsStringSlice(); !slices.Equal(v, []string{tc.finish}) {
				t.Errorf("finish reasons %q, want %q", v, tc.finish)
			}
			if v, ok := got[string(semconvgenai.GenAIResponseTimeToFirstChunkKey)]; !ok || v.AsFloat64() <= 0 ||
				v.AsFloat64() > s.EndTime().Sub(s.StartTime()).Seconds() {
				t.Errorf("time to first chunk %v", v.String())
			}
			checkGenAIMetrics(t, genaiPoints(t, mr), tc.provider)
		})
	}
}

// checkGenAIMetrics checks the four GenAI metrics of one call.
func checkGenAIMetrics(t *testing.T, pts map[string][]genPoint, provider attribute.KeyValue) {
	t.Helper()
	for _, name := range []string{
		genaiconv.ClientOperationDuration{}.Name(), genaiconv.ClientTokenUsage{}.Name(),
		genaiconv.ClientOperationTimeToFirstChunk{}.Name(), genaiconv.ClientOperationTimePerOutputChunk{}.Name(),
	} {
		want := 1
		if name == (genaiconv.ClientTokenUsage{}).Name() {
			want = 2 // input and output
		}
		if len(pts[name]) != want {
			t.Fatalf("%s: %d points, want %d", name, len(pts[name]), want)
		}
		for _, p := range pts[name] {
			for _, kv := range []attribute.KeyValue{semconvgenai.GenAIOperationNameChat, provider,
				semconvgenai.GenAIRequestModel("m-req"), semconvgenai.GenAIResponseModel(gatewaytest.GenAIModel)} {
				if v, ok := p.attrs.Value(kv.Key); !ok || v != kv.Value {
					t.Errorf("%s: %s = %v, want %v", name, kv.Key, v.String(), kv.Value.String())
				}
			}
			if _, ok := p.attrs.Value(semconvgenai.ServerAddressKey); !ok {
				t.Errorf("%s: no %s", name, semconvgenai.ServerAddressKey)
			}
			if p.count != 1 || len(p.bounds) == 0 {
				t.Errorf("%s: count %d, bounds %v", name, p.count, p.bounds)
			}
		}
	}
	if u := pts[genaiconv.ClientOperationDuration{}.Name()][0].unit; u != (genaiconv.ClientOperationDuration{}).Unit() {
		t.Errorf("duration unit %q", u)
	}
	tokens := map[string]float64{}
	for _, p := range pts[genaiconv.ClientTokenUsage{}.Name()] {
		v, _ := p.attrs.Value(semconvgenai.GenAITokenTypeKey)
		tokens[v.AsString()] = p.sum
	}
	in, out := semconvgenai.GenAITokenTypeInput.Value.AsString(), semconvgenai.GenAITokenTypeOutput.Value.AsString()
	if tokens[in] != gatewaytest.GenAIInputTokens || tokens[out] != gatewaytest.GenAIOutputTokens {
		t.Errorf("token usage %v", tokens)
	}
}

// TestGenAIRawStream: a stream the guard does not recognise as a model call
// gets no gen_ai attribute or metric.
func TestGenAIRawStream(t *testing.T) {
	f, mr, cfg := meteredFixture(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: hello\n\ndata: world\n\n")
	})
	s := genaiCall(t, h, cfg, f, genaiReq)
	for k := range attrs(s) {
		if strings.HasPrefix(k, "gen_ai.") {
			t.Errorf("raw stream has %s", k)
		}
	}
	for name := range genaiPoints(t, mr) {
		if strings.HasPrefix(name, "gen_ai.") {
			t.Errorf("raw stream recorded %s", name)
		}
	}
}

// TestGenAIRequestModel: the request's model is read from a bounded prefix
// of a body buffered for replay, at its top level only.
func TestGenAIRequestModel(t *testing.T) {
	pad := strings.Repeat("x", 5000)
	for _, tc := range []struct{ name, body, want string }{
		{"first", `{"model":"m-1","messages":[]}`, "m-1"},
		{"after nested", `{"messages":[{"model":"inner","content":"{\"model\":\"no\"}"}],"n":1,"model":"m-2"}`, "m-2"},
		{"escaped", `{ "model" : "m\u002d3" }`, "m-3"},
		{"not a string", `{"model":7}`, ""},
		{"past the prefix", `{"messages":"` + pad + `","model":"m-4"}`, ""},
		{"too large a body", `{"model":"m-5","pad":"` + strings.Repeat("y", 70<<10) + `"}`, ""},
		{"not an object", `["model","m-6"]`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			s := genaiCall(t, gatewaytest.ChatStreamWithUsage(1), f.cfg, f, tc.body)
			v, ok := attrs(s)[string(semconvgenai.GenAIRequestModelKey)]
			if got := v.AsString(); got != tc.want || ok != (tc.want != "") {
				t.Errorf("request model %q (present %v), want %q", got, ok, tc.want)
			}
		})
	}
}

// TestGenAIRequestBodyUntouched: reading the model does not consume the
// body sent.
func TestGenAIRequestBodyUntouched(t *testing.T) {
	f := newFixture(t)
	var got []byte
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		gatewaytest.ChatStreamWithUsage(1).ServeHTTP(w, r)
	})
	genaiCall(t, h, f.cfg, f, genaiReq)
	if !bytes.Equal(got, []byte(genaiReq)) {
		t.Errorf("server got %q", got)
	}
}

// TestGenAIModelsBounded: a server naming a new model on every call, asked
// for a new model on every call, grows the GenAI metrics by at most 100
// model names; the names past those are recorded as _OTHER, while each
// span keeps the name it was given.
func TestGenAIModelsBounded(t *testing.T) {
	f, mr, cfg := meteredFixture(t)
	var n atomic.Int64
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"resp-%d\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", n.Add(1))
	}), false)
	client := &http.Client{Transport: tracing.NewTransport(sse.NewTransport(srv.Client().Transport, sse.Config{}), cfg)}
	const calls = 80
	for i := range calls {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(`{"model":"req-%d","stream":true}`, i)))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s := f.waitSpan(t)
		if got := attrs(s)[string(semconvgenai.GenAIResponseModelKey)].AsString(); got != fmt.Sprintf("resp-%d", i+1) {
			t.Fatalf("call %d: span's response model %q", i, got)
		}
	}
	models := map[string]int{}
	var recorded uint64
	for _, p := range genaiPoints(t, mr)[tracing.MetricGenAIDuration] {
		recorded += p.count
		for _, k := range []attribute.Key{semconvgenai.GenAIRequestModelKey, semconvgenai.GenAIResponseModelKey} {
			if v, ok := p.attrs.Value(k); ok {
				models[v.AsString()]++
			}
		}
	}
	if recorded != calls || len(models) != 101 || models["_OTHER"] == 0 || models["req-0"] == 0 || models["resp-1"] == 0 {
		t.Errorf("%d calls recorded, %d model names: %v", recorded, len(models), models)
	}
}

// TestGenAIEchoScrubbed: a server that echoes the request's key as the
// response's id, model and finish reason does not put it on the span or
// on the metrics' attributes.
func TestGenAIEchoScrubbed(t *testing.T) {
	const key = "xk0live0123456789abcdefXYZ"
	f, mr, cfg := meteredFixture(t)
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\",\"model\":\"%s\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n", k, k)
		fmt.Fprintf(w, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"%s\"}]}\n\ndata: [DONE]\n\n", k)
	}), false)
	client := &http.Client{Transport: tracing.NewTransport(sse.NewTransport(srv.Client().Transport, sse.Config{}), cfg)}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(genaiReq))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s := f.waitSpan(t)
	a := attrs(s)
	if got := a[string(semconvgenai.GenAIResponseModelKey)].AsString(); got == "" {
		t.Fatal("no response model on the span")
	}
	for k, v := range a {
		if strings.Contains(v.String(), key) {
			t.Errorf("span attribute %s = %s", k, v.String())
		}
	}
	for _, p := range genaiPoints(t, mr)[tracing.MetricGenAIDuration] {
		for _, kv := range p.attrs.ToSlice() {
			if strings.Contains(kv.Value.String(), key) {
				t.Errorf("metric attribute %s = %s", kv.Key, kv.Value.String())
			}
		}
	}
}
