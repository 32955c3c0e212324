package resynth.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.parser.StrictErrorHandler;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.Reference;

/**
 * Validates FHIR R4 resources, one JSON resource per line (ndjson), with HAPI
 * FHIR's instance validator: an implementation independent of resynth.
 *
 * <p>Usage: {@code Validate [--check-references] FILE...} ({@code -} or no
 * file: standard input). Prints one JSON object per resource (line, resourceType,
 * id, errors, warnings, information: each message with its location and
 * HAPI's message id) and a last line {@code {"summary": ...}} with the counts,
 * warnings grouped by message. Exit 0 when no resource has an error, 1 when
 * any does (a line that does not parse strictly is an error), 2 on bad usage
 * or unreadable input.
 *
 * <p>Terminology: there is no terminology server. The FHIR core code systems
 * (gender, status, category, ...) and UCUM units are checked in memory; codes
 * of external code systems the core package does not contain (LOINC, SNOMED
 * CT, ICD-10-CM) cannot be checked and are reported as warnings, never
 * silently passed.
 *
 * <p>{@code --check-references}: every {@code Reference.reference} of the form
 * {@code Type/id} must name a resource of the input (the set is judged as one
 * batch); one that does not is an error of the resource holding it.
 */
public final class Validate {
  private Validate() {}

  public static void main(String[] args) throws Exception {
    boolean checkReferences = false;
    List<String> files = new ArrayList<>();
    for (String a : args) {
      if (a.equals("--check-references")) {
        checkReferences = true;
      } else if (a.equals("-h") || a.equals("--help")) {
        System.out.println("usage: Validate [--check-references] FILE.ndjson... ('-' = stdin)");
        return;
      } else if (a.startsWith("--")) {
        System.err.println("Validate: unknown option " + a);
        System.exit(2);
      } else {
        files.add(a);
      }
    }
    if (files.isEmpty()) {
      files.add("-");
    }

    FhirContext ctx = FhirContext.forR4Cached();
    UnknownCodeSystemWarningValidationSupport unknown =
        new UnknownCodeSystemWarningValidationSupport(ctx);
    unknown.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);
    ValidationSupportChain chain =
        new ValidationSupportChain(
            new DefaultProfileValidationSupport(ctx),
            new CommonCodeSystemsTerminologyService(ctx),
            new InMemoryTerminologyServerValidationSupport(ctx),
            new SnapshotGeneratingValidationSupport(ctx),
            unknown);
    FhirInstanceValidator module = new FhirInstanceValidator(chain);
    FhirValidator validator = ctx.newValidator();
    validator.registerValidatorModule(module);
    IParser parser = ctx.newJsonParser().setParserErrorHandler(new StrictErrorHandler());

    // Read every line first: references are judged against the whole input.
    List<String[]> lines = new ArrayList<>(); // {source, line number, text}
    for (String f : files) {
      try (BufferedReader r =
          f.equals("-")
              ? new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))
              : Files.newBufferedReader(Path.of(f), StandardCharsets.UTF_8)) {
        String line;
        int n = 0;
        while ((line = r.readLine()) != null) {
          n++;
          if (!line.isBlank()) {
            lines.add(new String[] {f, Integer.toString(n), line});
          }
        }
      } catch (java.io.IOException e) {
        System.err.println("Validate: cannot read " + f + ": " + e);
        System.exit(2);
      }
    }

    List<IBaseResource> parsed = new ArrayList<>();
    List<String> parseErrors = new ArrayList<>();
    Set<String> known = new HashSet<>();
    for (String[] l : lines) {
      try {
        IBaseResource res = parser.parseResource(l[2]);
        parsed.add(res);
        parseErrors.add(null);
        if (res.getIdElement().hasIdPart()) {
          known.add(res.fhirType() + "/" + res.getIdElement().getIdPart());
        }
      } catch (Exception e) {
        parsed.add(null);
        parseErrors.add(e.getMessage());
      }
    }

    // Validate in parallel (FhirValidator is thread-safe); HAPI takes
    // 10-40 ms a resource, so this halves a batch's time on two cores.
    List<ValidationResult> results =
        java.util.stream.IntStream.range(0, lines.size())
            .parallel()
            .mapToObj(i -> parsed.get(i) == null ? null : validator.validateWithResult(lines.get(i)[2]))
            .collect(java.util.stream.Collectors.toList());

    Gson gson = new GsonBuilder().disableHtmlEscaping().create();
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    int resources = 0;
    int withErrors = 0;
    long errors = 0;
    long warnings = 0;
    long information = 0;
    Map<String, Long> warningsByMessage = new TreeMap<>();
    Map<String, Long> errorsByMessage = new TreeMap<>();
    Map<String, Long> byType = new TreeMap<>();
    for (int i = 0; i < lines.size(); i++) {
      String[] l = lines.get(i);
      resources++;
      List<Map<String, String>> errs = new ArrayList<>();
      List<Map<String, String>> warns = new ArrayList<>();
      List<Map<String, String>> infos = new ArrayList<>();
      Map<String, Object> row = new LinkedHashMap<>();
      row.put("file", l[0]);
      row.put("line", Integer.parseInt(l[1]));
      IBaseResource res = parsed.get(i);
      if (res == null) {
        errs.add(message("parse", "", "not a strictly valid FHIR R4 JSON resource: " + parseErrors.get(i)));
      } else {
        row.put("resourceType", res.fhirType());
        row.put("id", res.getIdElement().getIdPart());
        byType.merge(res.fhirType(), 1L, Long::sum);
        ValidationResult result = results.get(i);
        for (SingleValidationMessage m : result.getMessages()) {
          Map<String, String> msg =
              message(
                  m.getMessageId() == null ? "" : m.getMessageId(),
                  m.getLocationString() == null ? "" : m.getLocationString(),
                  m.getMessage());
          ResultSeverityEnum s = m.getSeverity();
          if (s == ResultSeverityEnum.ERROR || s == ResultSeverityEnum.FATAL) {
            errs.add(msg);
          } else if (s == ResultSeverityEnum.WARNING) {
            warns.add(msg);
          } else {
            infos.add(msg);
          }
        }
        if (checkReferences) {
          for (Reference ref :
              ctx.newTerser().getAllPopulatedChildElementsOfType(res, Reference.class)) {
            String target = ref.getReference();
            if (target != null && !known.contains(target)) {
              errs.add(
                  message(
                      "reference_unresolved",
                      res.fhirType(),
                      "reference " + target + " names no resource of the input"));
            }
          }
        }
      }
      for (Map<String, String> e : errs) {
        errorsByMessage.merge(e.get("id").isEmpty() ? e.get("message") : e.get("id"), 1L, Long::sum);
      }
      for (Map<String, String> w : warns) {
        // Grouped by message id and text, with the code itself left out
        // ("... http://loinc.org for 'http://loinc.org#…'"): one line per
        // kind of warning and code system.
        warningsByMessage.merge(
            w.get("id") + ": " + w.get("message").replaceAll("#[^'\\s]*", "#…"), 1L, Long::sum);
      }
      errors += errs.size();
      warnings += warns.size();
      information += infos.size();
      if (!errs.isEmpty()) {
        withErrors++;
      }
      row.put("errors", errs);
      row.put("warnings", warns);
      row.put("information", infos);
      out.println(gson.toJson(row));
    }
    Map<String, Object> summary = new LinkedHashMap<>();
    summary.put("resources", resources);
    summary.put("by_type", byType);
    summary.put("resources_with_errors", withErrors);
    summary.put("errors", errors);
    summary.put("warnings", warnings);
    summary.put("information", information);
    summary.put("errors_by_message", errorsByMessage);
    summary.put("warnings_by_message", warningsByMessage);
    summary.put("references_checked", checkReferences);
    Map<String, Object> last = new LinkedHashMap<>();
    last.put("summary", summary);
    out.println(gson.toJson(last));
    out.flush();
    System.exit(withErrors > 0 ? 1 : 0);
  }

  private static Map<String, String> message(String id, String location, String text) {
    Map<String, String> m = new LinkedHashMap<>();
    m.put("id", id);
    m.put("location", location);
    m.put("message", text);
    return m;
  }
}
